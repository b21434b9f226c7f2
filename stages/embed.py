"""Stage `embed`: class-name embeddings of the dataset's classes."""

from zsseg.atomic import atomic_path
from zsseg.datasets.folder import FolderDataset
from zsseg.embeddings import check_embed_params, class_embeddings, save_embeddings
from zsseg.stage import stage_run

PARAMS = ("seed", "threads", "embed")
ARGUMENTS = {"dataset": "directory written by the prepare stage",
             "output": ".npz with class_names, vectors and source"}


def main(argv: list[str] | None = None) -> None:
    with stage_run("embed", __doc__, PARAMS, ARGUMENTS, argv) as stage:
        embed = stage.params.embed
        check_embed_params(embed)
        names = FolderDataset(stage.args.dataset).class_names
        vectors = class_embeddings(names, embed.source, embed.path)
        stage.log.info("%d classes embedded with %s: %d dimensions", len(names), embed.source, vectors.shape[1])
        with atomic_path(stage.args.output) as temporary:
            save_embeddings(temporary, names, vectors, embed.source)


if __name__ == "__main__":
    main()

"""zsseg as an installable package: its declared dependencies, and its wheel installed away from the checkout.

What the wheel tests prove. The wheel is built from the checkout's sources (pyproject.toml, README.md,
zsseg/, stages/) and installed with pip, offline, into a fresh virtual environment under pytest's
temporary directory. The only other thing that environment sees is a directory of links to the
distributions that the wheel's own ``Requires-Dist`` needs, followed through their requirements, as this
suite's environment has them installed (the versions requirements.txt pins). The commands then run with
the fresh environment's console script, from a directory outside the checkout, with no PYTHONPATH and
the checkout's virtual environment off PATH. So they prove that the wheel holds every module (the
``zsseg.datasets`` subpackage included) and the presets; that the declared dependencies suffice for
``zsseg --version``, ``zsseg preset voc`` and ``zsseg predict`` (an import of an undeclared package fails
here); that every ``Requires-Dist`` is installed at a version it accepts; and that the installed
``zsseg predict`` writes the same labels as the checkout's on a trained run (the suite's tiny Snakemake
run).

What they do not prove. pip never resolves or downloads the dependencies from an index here (offline, and
torch is too large to install per test), so neither the unpinned names' resolution on PyPI nor another
version set is tested; the pipeline's engines (DVC, Snakemake, the ``pipeline`` extra) run from a checkout
and are not tried from the wheel; no GPU is used.
"""

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from PIL import Image

from conftest import PROJECT_ROOT, SHARED
from stages import predict as predict_stage

PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
# What the wheel is built from: the packages, their data, and the readme pyproject.toml names.
WHEEL_SOURCES = ("pyproject.toml", "README.md", "zsseg", "stages")


def pinned_names() -> list[str]:
    """The package names requirements.txt pins, normalised (PEP 503)."""
    lines = [line.split("#")[0].strip() for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines()]
    return [canonicalize_name(Requirement(line).name) for line in lines if line]


def declared_requirements() -> list[Requirement]:
    """pyproject.toml's dependencies and every extra's."""
    groups = [PYPROJECT["dependencies"], *PYPROJECT["optional-dependencies"].values()]
    return [Requirement(text) for group in groups for text in group]


def test_every_pinned_package_is_declared_once_and_pinned_only_in_requirements_txt():
    declared = [canonicalize_name(requirement.name) for requirement in declared_requirements()]
    pinned = pinned_names()
    assert len(set(declared)) == len(declared), f"declared twice in pyproject.toml: {sorted(declared)}"
    assert sorted(declared) == sorted(pinned), (
        f"in pyproject.toml only: {sorted(set(declared) - set(pinned))}; "
        f"in requirements.txt only: {sorted(set(pinned) - set(declared))}")
    pins = [str(requirement) for requirement in declared_requirements()
            if any(specifier.operator in ("==", "===") for specifier in requirement.specifier)]
    assert pins == [], "requirements.txt holds the pins; pyproject.toml gives names (or lower bounds)"


def applies(requirement: Requirement, extras: set[str]) -> bool:
    """Whether a distribution installed with ``extras`` needs ``requirement`` on this interpreter."""
    return requirement.marker is None or any(requirement.marker.evaluate({"extra": extra}) for extra in {"", *extras})


def needed_distributions(distribution: importlib.metadata.Distribution) -> list[importlib.metadata.Distribution]:
    """The distributions of this suite's environment that ``distribution`` needs, theirs in turn; each one
    installed at a version its dependants accept."""
    extras_by_name: dict[str, set[str]] = {}
    distributions: dict[str, importlib.metadata.Distribution] = {}
    pending = [(distribution.metadata["Name"], Requirement(text)) for text in distribution.requires or []
               if applies(Requirement(text), set())]
    while pending:
        dependant, requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        try:
            version = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            pytest.fail(f"{dependant} requires {requirement}: not installed in {sys.prefix}")
        assert requirement.specifier.contains(version, prereleases=True), \
            f"{dependant} requires {requirement}: {version} is installed"
        if name in extras_by_name and requirement.extras <= extras_by_name[name]:
            continue
        extras = extras_by_name[name] = extras_by_name.get(name, set()) | requirement.extras
        distributions[name] = importlib.metadata.distribution(requirement.name)
        pending += [(requirement.name, Requirement(text)) for text in distributions[name].requires or []
                    if applies(Requirement(text), extras)]
    return list(distributions.values())


def link_distributions(distributions: list[importlib.metadata.Distribution], directory: Path) -> None:
    """Link the top-level modules, packages and metadata of ``distributions`` into ``directory``."""
    directory.mkdir()
    for distribution in distributions:
        if distribution.files is None:
            pytest.fail(f"{distribution.metadata['Name']}: no RECORD, so its files are unknown")
        # ".." leads to scripts outside site-packages; __pycache__ is shared by every top-level module.
        for top in {file.parts[0] for file in distribution.files} - {"..", "__pycache__"}:
            link = directory / top
            if not link.exists():  # namespace directories (nvidia/) are shared by several distributions
                link.symlink_to(distribution.locate_file(top))


def run(command: list, cwd: Path, env: dict) -> str:
    result = subprocess.run([str(word) for word in command], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, (f"{' '.join(map(str, command))} failed ({result.returncode}):\n"
                                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


@dataclass(frozen=True)
class FreshInstall:
    python: Path
    zsseg: Path               # the console script
    site_packages: Path
    outside: Path             # the working directory of every command, away from the checkout
    env: dict


@pytest.fixture(scope="module")
def fresh_install(tmp_path_factory) -> FreshInstall:
    base = tmp_path_factory.mktemp("package")
    assert not base.resolve().is_relative_to(PROJECT_ROOT.resolve()), f"{base} must lie outside the checkout"
    # Built from a copy: pip builds in the source tree and would leave build/ and zsseg.egg-info in the checkout.
    source = base / "source"
    source.mkdir()
    for name in WHEEL_SOURCES:
        if (PROJECT_ROOT / name).is_dir():
            shutil.copytree(PROJECT_ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(PROJECT_ROOT / name, source / name)
    outside = base / "elsewhere"
    outside.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    venv = base / "venv"
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *(entry for entry in env["PATH"].split(os.pathsep)
                                                         if not Path(entry).resolve().is_relative_to(PROJECT_ROOT))])
    env["TQDM_DISABLE"] = "1"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-cache-dir"]
    run([*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", "-w", base / "wheels", source],
        outside, env)
    wheel, = (base / "wheels").glob("zsseg-*.whl")
    run([sys.executable, "-m", "venv", "--without-pip", venv], outside, env)
    python = venv / "bin" / "python"
    # This environment's pip installs into the fresh one (which has none): offline, the wheel alone.
    run([*pip, "--python", python, "install", "--quiet", "--no-deps", "--no-index", wheel], outside, env)
    site_packages = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             outside, env).strip())
    # The wheel's Requires-Dist, followed through this suite's environment, and nothing else of it (not its
    # editable zsseg): a .pth file puts the directory of links on the fresh environment's path.
    installed, = importlib.metadata.distributions(name="zsseg", path=[str(site_packages)])
    dependencies = base / "dependencies"
    link_distributions(needed_distributions(installed), dependencies)
    (site_packages / "zsseg_dependencies.pth").write_text(f"{dependencies}\n")
    return FreshInstall(python, venv / "bin" / "zsseg", site_packages, outside, env)


# Run by the fresh environment's Python: where its modules come from, and what else it can import.
WHERE_FROM = """
import importlib.util, json, sys
import stages, zsseg.datasets.registry, zsseg.presets
print(json.dumps({"zsseg": zsseg.__file__, "stages": stages.__file__,
                  "presets": sorted(path.name for path in zsseg.presets.PRESETS.iterdir()), "path": sys.path,
                  "importable_extras": [name for name in ("dvc", "imgviz") if importlib.util.find_spec(name)]}))
"""


def test_the_installed_wheel_runs_from_its_own_environment(fresh_install):
    found = json.loads(run([fresh_install.python, "-c", WHERE_FROM], fresh_install.outside, fresh_install.env))
    assert Path(found["zsseg"]).is_relative_to(fresh_install.site_packages)
    assert Path(found["stages"]).is_relative_to(fresh_install.site_packages)
    assert found["presets"] == sorted(path.name for path in (PROJECT_ROOT / "zsseg" / "preset_files").glob("*.yaml"))
    assert [entry for entry in found["path"] if Path(entry).is_relative_to(PROJECT_ROOT)] == []
    # Installed in this suite's environment for the pipeline and test extras, not dependencies: absent there.
    assert found["importable_extras"] == []
    version = run([fresh_install.zsseg, "--version"], fresh_install.outside, fresh_install.env)
    assert version == f"zsseg {PYPROJECT['version']}\n"


def test_the_installed_preset_command_writes_a_validated_params_file(fresh_install):
    shutil.copy(PROJECT_ROOT / "params.yaml", fresh_install.outside / "params.yaml")
    weights = fresh_install.outside / "resnet101.pth"
    weights.write_bytes(b"")
    printed = run([fresh_install.zsseg, "preset", "voc", "--set", f"dataset.root={fresh_install.outside}",
                   "--set", f"backbone.weights={weights}",
                   "--set", f"embed.path={SHARED / 'data' / 'zs3net_word2vec' / 'voc_word2vec_300.npy'}"],
                  fresh_install.outside, fresh_install.env)
    assert printed.startswith("wrote params.yaml: voc preset")
    params = yaml.safe_load((fresh_install.outside / "params.yaml").read_text())
    assert params["dataset"]["name"] == "voc" and params["backbone"]["arch"] == "deeplabv3plus_resnet101"


def test_the_installed_predict_segments_as_the_checkout_s(fresh_install, snakemake_run, tmp_path):
    data = snakemake_run / "data"
    image_id = (data / "dataset" / "val.txt").read_text().split()[0]
    image, = (data / "dataset" / "images").glob(f"{image_id}.*")
    names = [*(data / "dataset" / "classes.txt").read_text().split("\n")[:-1], "purple star"]
    arguments = [image, "--classes", ", ".join(names), "--data", data, "--params", snakemake_run / "params.yaml"]
    run([fresh_install.zsseg, "predict", *arguments, "--out", tmp_path / "installed"],
        fresh_install.outside, fresh_install.env)
    predict_stage.main([str(word) for word in [*arguments, "--out", tmp_path / "checkout"]])
    for out in ("installed", "checkout"):
        assert json.loads((tmp_path / out / f"{image.stem}.json").read_text())["classes"] == names
    installed, checkout = (np.array(Image.open(tmp_path / out / f"{image.stem}_labels.png"))
                           for out in ("installed", "checkout"))
    assert np.array_equal(installed, checkout)

"""`zsseg --version` and `zsseg --help` print on stdout and exit 0, as every command's own --help does;
no command or an unknown one prints the usage on stderr and exits 2."""

import importlib.metadata
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import stages
from zsseg.cli import LIBRARY_COMMANDS, main as zsseg_main

COMMANDS = sorted([module.name for module in pkgutil.iter_modules(stages.__path__)] + list(LIBRARY_COMMANDS))


def test_version_is_the_installed_distribution_s(capsys):
    zsseg_main(["--version"])
    captured = capsys.readouterr()
    assert captured.out == f"zsseg {importlib.metadata.version('zsseg')}\n" and captured.err == ""


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_every_command_on_stdout(capsys, flag):
    zsseg_main([flag])
    captured = capsys.readouterr()
    assert captured.out.startswith(f"usage: zsseg {{{','.join(COMMANDS)}}} [ARGS]") and captured.err == ""
    assert "zsseg --version" in captured.out


@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_s_help_is_on_stdout_with_exit_0(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        zsseg_main([command, "--help"])
    assert exit_info.value.code == 0
    captured = capsys.readouterr()
    # In this process argparse names a stage's parser after pytest's sys.argv[0]: the console script's usage
    # line is the next test's.
    assert captured.out.startswith("usage: ") and "--params" in captured.out and captured.err == ""


def test_the_console_script_names_the_stage_in_its_usage():
    result = subprocess.run([str(Path(sys.executable).parent / "zsseg"), "backbone", "--help"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("usage: zsseg backbone [-h] [--params PARAMS]")


def test_an_unknown_command_is_named_on_stderr(capsys):
    with pytest.raises(SystemExit) as exit_info:
        zsseg_main(["segment"])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("usage: zsseg {")
    assert captured.err.endswith("zsseg: error: unknown command 'segment'\n")

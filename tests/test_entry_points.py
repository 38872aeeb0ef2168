"""Every command a user or developer types answers `--help` with its usage and exits 0.

The entry points are found, not listed: the scripts in `train/`, `benchmarks/` and `scripts/` and the library
modules that run as `python -m`, each with a `__main__` block, the `adversarial-midibert` command and every one of
its sub-commands, and the shell wrapper of the accelerator check. The two scripts users launch and the console
command run in a fresh process, as typed; the others run in this one (each a few seconds less).
"""
import argparse
import os
import runpy
import shutil
import subprocess
import sys

import pytest

from conftest import REPO

LAUNCHED = ("train/pretrain.py", "train/finetune.py")


def _has_main(path) -> bool:
    return 'if __name__ == "__main__":' in path.read_text()


SCRIPTS = sorted(str(p.relative_to(REPO)) for folder in ("train", "benchmarks", "scripts")
                 for p in (REPO / folder).glob("*.py") if _has_main(p))
MODULES = sorted(".".join(p.relative_to(REPO).with_suffix("").parts)
                 for p in (REPO / "adversarial_midibert").rglob("*.py") if _has_main(p))


def _subcommands() -> list[str]:
    from adversarial_midibert.cli import build_parser

    (action,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(action.choices)


def _assert_help(text: str) -> None:
    assert text.startswith("usage:"), text[:500]
    assert "-h, --help" in text, text[-500:]


def _help_in_process(run, argv0: str, capsys, monkeypatch) -> str:
    monkeypatch.setattr(sys, "argv", [argv0, "--help"])
    with pytest.raises(SystemExit) as exit_:
        run()
    out = capsys.readouterr().out
    assert exit_.value.code in (0, None), out[-2000:]
    return out


def test_the_entry_points_are_found():
    assert set(LAUNCHED) <= set(SCRIPTS)
    assert {"benchmarks/gpu_check.py", "benchmarks/representation.py", "scripts/finetune_study.py"} <= set(SCRIPTS)
    assert {"adversarial_midibert.pretraining.streaming", "adversarial_midibert.hub.convert_authors"} <= set(MODULES)
    assert {"classify", "melody", "velocity", "embed", "convert"} <= set(_subcommands())


@pytest.mark.parametrize("script", LAUNCHED)
def test_the_launched_scripts_answer_help_in_a_fresh_process(script):
    done = subprocess.run([sys.executable, script, "--help"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_help(done.stdout)
    assert "--output_dir" in done.stdout and "--data" in done.stdout


def test_the_console_command_answers_help():
    command = shutil.which("adversarial-midibert")
    assert command, "the console script is not installed: pip install -e ."
    done = subprocess.run([command, "--help"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_help(done.stdout)
    assert all(name in done.stdout for name in _subcommands())


@pytest.mark.parametrize("subcommand", _subcommands())
def test_every_subcommand_answers_help(subcommand, capsys, monkeypatch):
    from adversarial_midibert.cli import main

    out = _help_in_process(lambda: main([subcommand, "--help"]), "adversarial-midibert", capsys, monkeypatch)
    _assert_help(out)
    assert f"adversarial-midibert {subcommand}" in out


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s not in LAUNCHED])
def test_every_script_answers_help(script, capsys, monkeypatch):
    path = str(REPO / script)
    monkeypatch.syspath_prepend(str(REPO / script.split("/")[0]))  # as `python <script>` puts its folder first
    out = _help_in_process(lambda: runpy.run_path(path, run_name="__main__"), path, capsys, monkeypatch)
    _assert_help(out)


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.filterwarnings("ignore:.*found in sys.modules after import:RuntimeWarning")
def test_every_library_module_run_with_python_m_answers_help(module, capsys, monkeypatch):
    out = _help_in_process(lambda: runpy.run_module(module, run_name="__main__", alter_sys=True), module, capsys,
                           monkeypatch)
    _assert_help(out)


def test_the_accelerator_check_wrapper_answers_help():
    done = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("usage: bash benchmarks/gpu_check.sh")
    assert "usage: gpu_check.py" in done.stdout and "--dry-run" in done.stdout

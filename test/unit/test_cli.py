from __future__ import annotations

import json
import subprocess
import sys

from ad_perception import __version__, cli


def test_help_lists_every_subcommand(capsys):
    assert cli.main([]) == 2
    out = capsys.readouterr().out
    for name in cli.SUBCOMMANDS:
        assert name in out


def test_every_subcommand_module_has_the_protocol():
    import importlib
    import importlib.util

    for name, (module_name, _help) in cli.SUBCOMMANDS.items():
        if importlib.util.find_spec(module_name) is None:
            continue  # registered ahead of its implementation landing
        module = importlib.import_module(module_name)
        assert callable(module.add_arguments) and callable(module.run), name


def test_info_json_reports_environment():
    out = subprocess.run(
        [sys.executable, "-m", "ad_perception.cli", "info", "--json"],
        capture_output=True, text=True, check=True,
    ).stdout
    info = json.loads(out)
    assert info["ad_perception"] == __version__
    assert info["modules"]["numpy"]

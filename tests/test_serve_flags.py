"""`nlptransfer serve`'s server flags are made from ServeConfig's fields: the same names, types, defaults and help as
when they were written by hand, and the flags give the config the server runs with."""
from __future__ import annotations

import pytest

from nlptransfer.cli import build_parser
from nlptransfer.cli.serve import settings_from
from nlptransfer.serve import DriftSettings, ServeConfig


def _serve_actions() -> dict:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {a.option_strings[0]: a for a in sub.choices["serve"]._actions if a.option_strings}


def test_the_serve_flags_are_the_config_fields_with_their_defaults():
    actions = _serve_actions()
    defaults = {flag: actions[flag].default for flag in (
        "--max-batch-size", "--max-batch-tokens", "--max-wait-ms", "--max-queue", "--timeout", "--max-texts",
        "--api-key-env", "--prediction-log", "--log-texts", "--drift-window", "--drift-psi", "--drift-p",
        "--drift-mmd")}
    assert defaults == {"--max-batch-size": 64, "--max-batch-tokens": 16384, "--max-wait-ms": 5.0,
                        "--max-queue": 1024, "--timeout": 30.0, "--max-texts": 256, "--api-key-env": None,
                        "--prediction-log": None, "--log-texts": False, "--drift-window": 500, "--drift-psi": 0.25,
                        "--drift-p": 0.01, "--drift-mmd": 0.05}
    assert actions["--timeout"].help == "seconds a request may wait: then 504"
    assert actions["--max-queue"].help == "texts waiting, at most; beyond that 503 (default %(default)s)"
    assert (actions["--api-key-env"].metavar, actions["--prediction-log"].metavar) == ("VAR", "FILE")
    # fields without a flag stay without one
    assert not {"--max-chars", "--max-body-bytes", "--log-max-bytes", "--drift-every", "--every"} & set(actions)


def test_the_flags_give_the_config_the_server_runs_with():
    parser = build_parser()
    assert settings_from(parser.parse_args(["serve", "run"]), ServeConfig) == ServeConfig()
    args = parser.parse_args(["serve", "run", "--timeout", "0.5", "--max-texts", "7", "--log-texts", "--api-key-env",
                              "KEY", "--drift-p", "0.2", "--drift-window", "30", "--max-wait-ms", "10"])
    assert settings_from(args, ServeConfig) == ServeConfig(
        timeout_s=0.5, max_texts=7, log_texts=True, api_key_env="KEY", max_wait_ms=10.0,
        drift=DriftSettings(p_threshold=0.2, window=30))


@pytest.mark.parametrize("flag", ["--max-queue", "--drift-window", "--max-batch-size"])
def test_a_whole_number_setting_below_1_is_refused(flag, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "run", flag, "0"])
    assert f"argument {flag}: must be at least 1, got 0" in capsys.readouterr().err

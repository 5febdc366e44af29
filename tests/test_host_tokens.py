"""`xxl token`: host links whose tokens an independent JWT library accepts (and refuses when
they should be refused), and the stack's app secret never printed."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from components.model.credentials import (
    PLACEHOLDER,
    SIGNALING_SECRETS,
    Credentials,
    env_name,
    placeholder,
)
from components.model.tokens import APP_ID, AUDIENCE, STAGE_GROUP
from components.offline import cli
from tests.conftest import ROOT

STACK = ROOT / "stacks" / "Pulumi.hetzner-10k.yaml"
SECRET = "app-secret-for-tests-0123456789abcdef"
OTHER_SECRET = "another-secret-0123456789abcdefghijkl"


def _token(link: str) -> str:
    return parse_qs(urlparse(link).query)["jwt"][0]


def _link(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    args = ["token", "--stack", str(STACK), "--secret-file", str(secret_file), *extra]
    assert cli.main(args) == 0
    out, err = capsys.readouterr()
    assert SECRET not in out + err
    return out.strip()


def test_a_moderator_link_verifies_with_pyjwt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = _link(tmp_path, capsys, "--name", "Ada Host", "--moderator", "--room", "keynote")
    assert link.startswith("https://live.example.org/keynote?jwt=")
    claims = jwt.decode(
        _token(link), SECRET, algorithms=["HS256"], audience=AUDIENCE, issuer=APP_ID
    )
    assert claims["sub"] == "live.example.org"
    assert claims["room"] == "keynote"
    assert claims["context"]["group"] == STAGE_GROUP
    assert claims["context"]["user"] == {"id": "ada-host", "name": "Ada Host", "moderator": True}
    assert 12 * 3600 - 5 <= claims["exp"] - time.time() <= 12 * 3600 + 5


def test_another_secret_and_expiry_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = _token(_link(tmp_path, capsys, "--name", "Bob", "--hours", "0.001"))
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, OTHER_SECRET, algorithms=["HS256"], audience=AUDIENCE)
    time.sleep(4)
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(token, SECRET, algorithms=["HS256"], audience=AUDIENCE)


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        (["--name", ""], "--name"),
        (["--name", "x", "--room", "Bad Room"], "--room"),
        (["--name", "x", "--hours", "0"], "--hours"),
        (["--name", "x", "--hours", "500"], "--hours"),
    ],
)
def test_bad_requests_exit_2_naming_the_argument(
    extra: list[str], names: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    args = ["token", "--stack", str(STACK), "--secret-file", str(secret_file), *extra]
    assert cli.main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert names in err
    assert "Traceback" not in err


def test_a_secret_file_that_holds_no_secret_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("short")
    args = ["token", "--stack", str(STACK), "--secret-file", str(secret_file), "--name", "x"]
    assert cli.main(args) == 2
    assert "--secret-file" in capsys.readouterr().err


@given(st.sampled_from(SIGNALING_SECRETS))
def test_every_placeholder_names_its_variable(field: str) -> None:
    match = PLACEHOLDER.fullmatch(placeholder(field))
    assert match is not None
    assert match[1] == env_name(field)
    assert getattr(Credentials.placeholders(), field) == placeholder(field)

"""The ``check`` and ``explain`` commands, through ``main()`` and a real process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wsgi_reproxy.__main__ import main

SAMPLES = Path(__file__).resolve().parent.parent / "sample_conf"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_good_config_exits_zero_with_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "check", str(SAMPLES / "site.conf"))
    assert code == 0 and err == ""
    assert "Syntax OK: 3 file(s), 7 section(s), 2 virtual host(s)" in out


def test_check_prints_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", str(SAMPLES / "minimal.conf"))
    assert code == 0
    assert (
        "warning: " in out
        and "minimal.conf:4: AllowReproxy On with no ReproxyAllowTargets" in out
    )


def test_check_bad_config_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text("<Location />\n  AllowReproxy maybe\n</Location>\n")
    code, out, err = run(capsys, "check", str(conf))
    assert code == 1 and out == ""
    assert err == f"{conf}:2: AllowReproxy must be On or Off\n"


def test_check_strict_lists_ignored_directives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "a.conf"
    conf.write_text("ServerTokens Prod\n<Location />\nSetHandler x\n</Location>\n")
    _, plain, _ = run(capsys, "check", str(conf))
    code, strict, _ = run(capsys, "check", "--strict", str(conf))
    assert code == 0 and "ignored:" not in plain
    assert f"ignored: {conf}:1: ServerTokens Prod" in strict
    assert f"ignored: {conf}:3: SetHandler x" in strict
    assert "2 directive(s) ignored" in strict


def test_check_defines_and_modules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "a.conf"
    conf.write_text(
        "<IfDefine PROD>\n<IfModule mod_ssl.c>\nAllowReproxy maybe\n</IfModule>\n</IfDefine>\n"
    )
    assert run(capsys, "check", str(conf))[0] == 0
    assert (
        run(capsys, "check", "-D", "PROD", "--module", "mod_wsgi.c", str(conf))[0] == 0
    )
    assert run(capsys, "check", "-D", "PROD", str(conf))[0] == 1


def test_explain_lists_sections_in_merge_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(
        capsys,
        "explain",
        str(SAMPLES / "site.conf"),
        "http://files.example.com/private/x.iso",
    )
    assert code == 0
    assert "Virtual host: files.example.com" in out
    directory = out.index('<Directory "/srv/files">')
    files = out.index('<Files "*.iso">')
    location = out.index('<Location "/private">')
    assert directory < files < location
    assert "allow_reproxy = Off" in out  # the late <Location /private> wins
    assert "read_timeout = 120.0" in out


def test_explain_shows_where_each_setting_came_from(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(
        capsys,
        "explain",
        str(SAMPLES / "site.conf"),
        "/media/thumbs/a.png",
        "--host",
        "www.example.com",
    )
    assert code == 0
    assert "allow_reproxy = On  (" in out and "site.conf:34)" in out
    assert "preserve_headers = Content-Type Cache-Control ETag" in out
    assert "max_redirects = 0  (" in out and "site.conf:20)" in out
    assert "file_roots = (none)  (default)" in out


def test_explain_replace_merge_mode(capsys: pytest.CaptureFixture[str]) -> None:
    args = (
        "explain",
        str(SAMPLES / "site.conf"),
        "/media/thumbs/a.png",
        "--host",
        "example.com",
    )
    _, field, _ = run(capsys, *args)
    _, replace, _ = run(capsys, *args, "--merge", "replace")
    assert "allow_reproxy = On" in field
    assert "allow_reproxy = Off  (default)" in replace


def test_module_entry_point_runs_as_a_process(tmp_path: Path) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text("AllowReproxy perhaps\n")
    proc = subprocess.run(
        [sys.executable, "-m", "wsgi_reproxy", "check", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"{conf}:1: AllowReproxy must be On or Off"

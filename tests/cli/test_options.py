"""Typed build options: the command line builds one `Options` value (and one `RegistryAccess`), each option by
name; every command's parameters match what its decorators hand it."""

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bootstrap.build.plan import Options
from bootstrap.cli import main
from bootstrap.cli.common import RegistryAccess, registry_access, source_options
from bootstrap.errors import BootstrapError


def test_the_source_options_arrive_as_one_typed_value(tmp_path: Path) -> None:
    seen: list[tuple[Options, RegistryAccess]] = []

    @click.command()
    @source_options
    @registry_access
    def probe(opts: Options, access: RegistryAccess) -> None:
        seen.append((opts, access))

    args = ["--suite", "bookworm", "--arch", "arm64", "--mirror", "http://m", "--security-mirror", "http://s"]
    args += ["--keyring", "a.gpg", "--keyring", "b.gpg", "--insecure", "--no-check-valid-until", "--no-default-user"]
    args += ["--cache-dir", "c", "--allow-path", str(tmp_path), "--creds", "u:p", "--insecure-registry"]
    args += ["--token-realm", "auth.example"]
    result = CliRunner().invoke(probe, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    opts, access = seen[0]
    assert opts == Options(
        suite="bookworm",
        arch="arm64",
        mirror="http://m",
        security_mirror="http://s",
        keyrings=(Path("a.gpg"), Path("b.gpg")),
        insecure=True,
        check_valid_until=False,
        default_user=False,
        cache_dir=Path("c"),
        allow_paths=(tmp_path,),
    )
    assert access == RegistryAccess("u:p", False, None, True, ("auth.example",))
    assert access.options().creds == "u:p" and access.options().insecure
    CliRunner().invoke(probe, [], catch_exceptions=False)
    assert seen[1] == (Options(), RegistryAccess(None, False, None, False, ()))


def test_a_mistyped_option_name_fails_at_once() -> None:
    @click.command()
    @click.option("--offline", is_flag=True)
    @source_options
    def typo(opts: Options, offlin: bool) -> None:
        raise AssertionError("not reached")

    with pytest.raises(TypeError, match="offline"):
        CliRunner().invoke(typo, ["--offline"], catch_exceptions=False)


@pytest.mark.parametrize(
    "args",
    [
        ["build", "no-such-recipe", "--suite", "s", "--tag", "t", "--epoch", "1", "--compression", "zstd"],
        ["build", "no-such-recipe", "--if-changed", "nowhere", "--sbom-format", "cyclonedx", "--cache-max", "1G"],
        ["lock", "no-such-recipe", "--epoch", "1"],
        ["resolve", "no-such-recipe", "--arch", "amd64"],
        ["verify", "."],
        ["check", "no-such-recipe", "--against", "nowhere", "--insecure-registry"],
        ["fleet", "no-such-fleet.toml", "--job", "x", "--cache-max", "1G"],
        ["push", ".", "no-host", "--insecure", "--chunk-size", "1M"],
        ["index", "no-host", "other"],
    ],
    ids=lambda args: args[0],
)
def test_every_command_takes_what_its_decorators_hand_it(args: list[str]) -> None:
    """Each command reaches its own body (and fails there, on purpose, with an error the user can act on),
    not a TypeError from options it does not take."""
    result = CliRunner().invoke(main.cli, args)
    assert isinstance(result.exception, BootstrapError), repr(result.exception)

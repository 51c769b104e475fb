"""`ticketing schemas check`: fail when schemas/ can no longer read data written before."""

from __future__ import annotations

from pathlib import Path

import typer

from ticketing.stream.compatibility import (
    GitError,
    check_history,
    compare_repositories,
    schema_texts_at_revision,
    unique_incompatibilities,
)
from ticketing.stream.schemas import (
    DEFAULT_SCHEMAS_DIR,
    SchemaError,
    SchemaRepository,
    layout_problems,
)

EXIT_INCOMPATIBLE = 1
EXIT_CANNOT_CHECK = 2

schemas_app = typer.Typer(
    help="Inspect and check the Avro schemas in schemas/.",
    no_args_is_help=True,
)


@schemas_app.command("check")
def check(
    against: str = typer.Option(
        "HEAD",
        "--against",
        metavar="GIT_REV",
        help="Git revision whose schemas/ the working tree must stay readable for.",
    ),
    schemas_dir: Path = typer.Option(
        DEFAULT_SCHEMAS_DIR,
        "--schemas-dir",
        help="Folder of .avsc files to check. It must be inside a git work tree.",
    ),
) -> None:
    """Check that every schema can read data written with its versions at GIT_REV.

    Exit code 1 lists each breaking change with the schema and the field. Breaking
    changes are a removed schema, a field added without a default, a type change that
    is not an Avro promotion, a removed enum symbol, and an old version dropped from
    schemas/. Exit code 2 means that the check could not run.
    """
    try:
        new = SchemaRepository.load(schemas_dir)
        old = SchemaRepository.from_texts(schema_texts_at_revision(schemas_dir, against))
    except (SchemaError, GitError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_CANNOT_CHECK) from error

    layout = layout_problems(new)
    incompatible = unique_incompatibilities([*compare_repositories(old, new, revision=against), *check_history(new)])
    for problem in layout:
        typer.echo(f"invalid: {problem}", err=True)
    for incompatibility in incompatible:
        typer.echo(f"incompatible: {incompatibility}", err=True)

    if layout or incompatible:
        typer.echo(
            f"schemas check failed: {len(incompatible)} breaking change(s) and "
            f"{len(layout)} layout problem(s) in {schemas_dir} against {against}",
            err=True,
        )
        raise typer.Exit(EXIT_INCOMPATIBLE)

    typer.echo(
        f"schemas check passed: {len(new)} schema file(s) in {schemas_dir} read all data "
        f"written with the {len(old)} file(s) at {against}"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(schemas_app, name="schemas")

"""Command-line options shared by the commands that read labeled files (import, replay)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from consumer.settings import Settings
from producer_tools.exits import ToolError
from producer_tools.labeled_files import (
    FORMATS,
    Columns,
    LabeledFileError,
    Row,
    RowError,
    load_label_map,
    read_labeled_file,
)


def add_file_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="a .csv or .jsonl file")
    group = parser.add_argument_group("file columns")
    group.add_argument(
        "--text-column",
        default="text",
        help="ticket text (default: text); ignored with --body-column",
    )
    group.add_argument("--subject-column", default=None, help="ticket subject (optional)")
    group.add_argument("--body-column", default=None, help="ticket body, instead of --text-column")
    group.add_argument("--label-column", default="category", help="label (default: category)")
    group.add_argument(
        "--id-column",
        default=None,
        help="ticket id (default: the 'id' column when present, else ids derived from the"
        " text and label: imp-<sha1 hex16>)",
    )
    group.add_argument(
        "--label-map",
        type=Path,
        default=None,
        metavar="MAP.json",
        help="{bucket: [label, ...]}: store the bucket; rows with labels not in it are rejected",
    )
    group.add_argument(
        "--format", choices=FORMATS, default=None, help="default: from the suffix (.csv, .jsonl)"
    )


def columns_from_args(args: argparse.Namespace) -> Columns:
    return Columns(
        text=args.text_column,
        label=args.label_column,
        subject=args.subject_column,
        body=args.body_column,
        id=args.id_column,
    )


def open_file_from_args(args: argparse.Namespace, settings: Settings) -> Iterator[Row | RowError]:
    """Label map + file checked up front; ``ToolError`` (exit 2) when either is unusable."""
    try:
        label_map = load_label_map(args.label_map) if args.label_map else None
        return read_labeled_file(
            args.file,
            columns_from_args(args),
            label_map,
            fmt=args.format,
            max_text_bytes=settings.validation.max_body_bytes,
        )
    except LabeledFileError as exc:
        raise ToolError(str(exc)) from exc

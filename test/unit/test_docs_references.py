"""The README and docs/ refer only to files in this repository, and those files exist: a reader
of a clean clone can follow every link and open every path the text names."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / 'README.md', *sorted((REPO / 'docs').glob('*.md'))]
NAMED_ELSEWHERE = ('DESIGN.md', 'ros-env.sh')
"""Files that live outside the repository (an old design note, a machine's shell setup)."""
GENERATED_FOLDERS = ('runs', 'build', 'datasets')
"""Made by running things (gitignored): paths into them are examples, not references."""
FILE_PATH = re.compile(r'`((?:\.\./|[\w-]+/)[\w./-]*\.(?:py|yaml|yml|xml|sdf|json|md|png|txt|cfg|msg|sh))`')


def relative(document: Path) -> str:
    return str(document.relative_to(REPO))


@pytest.mark.parametrize('document', DOCUMENTS, ids=relative)
def test_nothing_outside_the_repository_is_referenced(document: Path) -> None:
    text = document.read_text(encoding='utf-8')
    for name in NAMED_ELSEWHERE:
        assert name not in text, f'{relative(document)} refers to {name}, not in the repository'
    for match in re.finditer(r'(?<![\w.])\.\./[\w./-]+', text):
        target = (document.parent / match.group(0)).resolve()
        assert target.is_relative_to(REPO), \
            f'{relative(document)} refers to {match.group(0)}, outside the repository'


@pytest.mark.parametrize('document', DOCUMENTS, ids=relative)
def test_every_link_and_file_path_exists(document: Path) -> None:
    text = document.read_text(encoding='utf-8')
    missing = []
    for match in re.finditer(r'\]\(([^)\s#]+)', text):
        target = match.group(1)
        if not re.match(r'[a-z]+://', target) and not (document.parent / target).exists():
            missing.append(target)
    for match in FILE_PATH.finditer(text):
        path = match.group(1)
        if path.split('/')[0] in GENERATED_FOLDERS:
            continue
        if not ((REPO / path).exists() or (document.parent / path).exists()):
            missing.append(path)
    assert not missing, f'{relative(document)} names files that do not exist: {missing}'

"""The repository stands on its own: no tracked file points at documents
outside it."""
import subprocess

from tests.conftest import REPO


def test_no_file_refers_to_design_documents_outside_the_repository():
    files = subprocess.run(['git', 'ls-files'], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    offences = []
    for name in files:
        if name == 'tests/test_repository.py':
            continue
        try:
            text = open(f'{REPO}/{name}', encoding='utf-8').read()
        except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
            continue
        for word in ('DESIGN.md', 'PAPERS.md', '../shared'):
            if word in text:
                offences.append(f'{name}: {word}')
    assert not offences, offences


def test_markdown_links_resolve_inside_the_repository():
    """Every relative link of every tracked Markdown file names a tracked file
    or folder (web links are left alone; nothing here may leave the repository)."""
    import os.path as osp
    import re
    files = subprocess.run(['git', 'ls-files', '*.md'], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    assert 'README.md' in files
    broken, checked = [], 0
    for name in files:
        text = open(f'{REPO}/{name}', encoding='utf-8').read()
        for target in re.findall(r'\]\(([^)\s]+)\)', text):
            if re.match(r'[a-z]+:', target) or target.startswith('#'):
                continue
            checked += 1
            path = osp.normpath(osp.join(osp.dirname(name), target.split('#')[0]))
            if path.startswith('..') or not osp.exists(osp.join(REPO, path)):
                broken.append(f'{name}: {target}')
    assert checked > 10 and not broken, broken

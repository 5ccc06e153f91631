"""The commands in README.md and docs/*.md: the README says how to use
``.venv`` before its first command, its resume example continues the demo
run, every documented file and option exists, links and gallery pictures
are there, documented outputs go to work_dirs/ or data/, and
tools/misc/check_doc_commands.py runs commands as a new user would (a fresh
shell, in order, placeholders not run), prints each result as it finishes
and leaves the git checkout as it found it."""
import glob
import itertools
import os.path as osp
import re
import shlex
import subprocess
import time

import pytest

from tests.helpers import ROOT, tool_module

check = tool_module('tools/misc/check_doc_commands.py')
README = osp.join(ROOT, 'README.md')
DOCS = [README] + sorted(glob.glob(osp.join(ROOT, 'docs', '*.md')))
COMMANDS = [c for path in DOCS for c in check.commands_of(path)]


def makefile_value(name: str) -> str:
    text = open(osp.join(ROOT, 'Makefile')).read()
    return re.search(rf'^{name} [:?]?= (\S+)', text, re.M).group(1)


def expand(token: str) -> list:
    """Brace expansion ({a,b}) and globs of a documented path."""
    match = re.search(r'\{([^{}]+)\}', token)
    if match:
        return list(itertools.chain.from_iterable(
            expand(token[:match.start()] + part + token[match.end():])
            for part in match.group(1).split(',')))
    return glob.glob(osp.join(ROOT, token)) if any(
        c in token for c in '*?') else [osp.join(ROOT, token)]


def test_commands_found_in_readme_and_docs():
    """The README is a front door (its first commands are the two
    commands, the rest live in docs/); the parser finds them all."""
    kinds = {c.kind for c in COMMANDS}
    assert kinds <= {'cpu', 'slow', 'template', 'full-size', 'maintainer'}
    readme = [c.text for c in COMMANDS if c.path == 'README.md']
    assert readme[:2] == ['make demo', 'make test']
    assert len(readme) > 10
    assert len(COMMANDS) > 60
    assert {'cpu', 'template', 'full-size'} <= kinds


def test_readme_says_how_to_use_the_venv_before_its_python_commands():
    readme = [c.text for c in COMMANDS if c.path == 'README.md']
    first_python = next(i for i, t in enumerate(readme)
                        if re.match(r'(\w+=\S+ )*(python|bash tools)', t))
    assert 'source .venv/bin/activate' in readme[:first_python]


def test_readme_resume_example_continues_the_demo_run():
    config, work_dir = makefile_value('DEMO_CFG'), makefile_value('DEMO_DIR')
    resumes = [c for c in COMMANDS if c.path == 'README.md'
               and f'tools/train.py {config}' in c.text
               and '--resume' in c.text]
    assert resumes
    for cmd in resumes:
        assert f'--work-dir {work_dir}' in cmd.text, cmd
    makefile = open(osp.join(ROOT, 'Makefile')).read()
    assert '$(PY) tools/train.py $(DEMO_CFG) --work-dir $(DEMO_DIR) ' \
        '--resume' in makefile


def package_text() -> str:
    """The source of mmmask and the tools: where options are defined."""
    files = glob.glob(osp.join(ROOT, 'mmmask', '**', '*.py'), recursive=True)
    return '\n'.join(open(f).read() for f in files)


def test_documented_files_and_options_exist():
    shared = package_text()
    for cmd in COMMANDS:
        try:
            words = shlex.split(cmd.text)
        except ValueError as err:
            pytest.fail(f'{cmd.path}:{cmd.line}: {err}')
        for word in words:
            path = word.split('=', 1)[-1]
            if re.match(r'(tools|configs|docs)/', path) and not re.search(
                    r'[A-Z_]{4,}|<', path):
                found = [p for p in expand(path) if osp.exists(p)]
                assert found, f'{cmd.path}:{cmd.line}: no {path}'
        tool = next((w for w in words if re.match(r'tools/.+\.py$', w)),
                    None)
        if tool is None or 'python' not in cmd.text.split(tool)[0]:
            continue
        source = open(osp.join(ROOT, tool)).read() + shared
        for word in words:
            option = word.strip('[]').split('=')[0]
            if re.fullmatch(r'--[a-z][\w-]*', option) and \
                    option != '--help':
                assert f"'{option}'" in source, \
                    f'{cmd.path}:{cmd.line}: {tool} has no {option}'


def test_links_and_gallery_pictures_exist():
    gallery = tool_module('tools/analysis/make_gallery.py').GALLERY
    readme = open(README).read()
    for name in gallery:
        assert f'(docs/images/{name})' in readme, name
    for path in DOCS:
        text = open(path).read()
        for target in re.findall(r'\]\(([^)#\s]+)(?:#[^)]*)?\)', text):
            if target.startswith(('http://', 'https://', 'mailto:')):
                continue
            full = osp.normpath(osp.join(osp.dirname(path), target))
            assert osp.exists(full), f'{osp.relpath(path, ROOT)}: {target}'
    makefile = open(osp.join(ROOT, 'Makefile')).read()
    makefile = makefile.replace('\\\n\t\t', '')
    assert re.search(r'^gallery: demo\n\t\$\(PY\) tools/analysis/'
                     r'make_gallery\.py .*--out \$\(GALLERY_DIR\)', makefile,
                     re.M)


def test_checker_runs_commands_in_order_in_a_fresh_shell(
        tmp_path, capsys, monkeypatch):
    """A page of docs/ runs after README's `source .venv/bin/activate`,
    in a shell that inherits nothing else from the caller."""
    monkeypatch.setenv('MMMASK_DOC_LEAK', '1')
    monkeypatch.setenv('PYTHONPATH', ROOT)
    venv = osp.realpath(osp.join(ROOT, '.venv'))  # a worktree's may link
    page = tmp_path / 'page.md'
    page.write_text(f'''# A page

```bash
export MMMASK_DOC_CHECK=1   # kept for the next command
test "$MMMASK_DOC_CHECK" = 1 && test -z "$MMMASK_DOC_LEAK$PYTHONPATH"
test "$(cd "$VIRTUAL_ENV" && pwd -P)" = "{venv}"
test "$(command -v python)" = "$VIRTUAL_ENV/bin/python"
false
python tools/train.py CONFIG --work-dir WORK_DIR
```

```python
raise SystemExit(1)  # python code, not a command
```

```
configs/demo/x.py  # a list of files, not commands
```
''')
    commands = check.commands_of(str(page))
    assert [c.kind for c in commands] == ['cpu'] * 5 + ['template']
    assert commands[0].text == 'export MMMASK_DOC_CHECK=1'
    assert check.main(['--files', str(page)]) == 1
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines()
             if 'page.md:' in line and not line.startswith('--')]
    assert [line.split()[0] for line in lines] == ['ok'] * 4 + ['FAILED']
    assert '1 template' in out


def test_documented_outputs_go_to_work_dirs_or_data():
    """The commands the checker runs write into ignored folders only; the
    gallery goes to work_dirs/ unless a maintainer names docs/images."""
    options = re.compile(r'--(out|json|work-dir|log)[= ](\S+)')
    runnable = [c for c in COMMANDS if c.kind in ('cpu', 'slow')]
    for cmd in runnable:
        for _, target in options.findall(cmd.text):
            assert target.startswith(('work_dirs/', 'data/')), \
                f'{cmd.path}:{cmd.line}: writes {target}'
    assert makefile_value('GALLERY_DIR').startswith('work_dirs/')
    assert any(c.text.startswith('make gallery') for c in runnable)
    assert check.classify('make gallery GALLERY_DIR=docs/images') == \
        'maintainer'
    ignored = subprocess.run(['git', 'check-ignore', 'work_dirs/x', 'data/x'],
                             cwd=ROOT, capture_output=True, text=True)
    assert ignored.stdout.split() == ['work_dirs/x', 'data/x']


def git_status(root: str) -> str:
    return subprocess.run(['git', 'status', '--porcelain',
                           '--untracked-files=all'], cwd=root,
                          capture_output=True, text=True, check=True).stdout


def test_checker_leaves_the_checkout_clean(tmp_path, capsys):
    """A page with the maintainers' gallery command (it would rewrite the
    tracked pictures) and a command that draws into work_dirs/: the first
    is not run, the second is, and git status is as before."""
    page = tmp_path / 'page.md'
    page.write_text('''```bash
make gallery GALLERY_DIR=docs/images   # maintainers: the README's pictures
mkdir -p work_dirs && echo png > work_dirs/doc_check_probe.png
```
''')
    before = git_status(ROOT)
    assert check.main(['--files', str(page)]) == 0
    out = capsys.readouterr().out
    assert git_status(ROOT) == before
    assert re.search(r'^ok .*page\.md:3: mkdir -p work_dirs', out, re.M)
    assert "not run: {'maintainer': 1}" in out
    assert open(osp.join(ROOT, 'work_dirs', 'doc_check_probe.png')).read() \
        == 'png\n'


def test_checker_fails_a_command_that_changes_the_checkout(tmp_path):
    """In a git checkout of its own: writing over a tracked file and
    leaving a new file both fail, naming the files; a command that writes
    into an ignored folder passes."""
    repo = tmp_path / 'repo'
    repo.mkdir()
    (repo / 'picture.png').write_bytes(b'committed')
    (repo / '.gitignore').write_text('work_dirs/\n')
    git = ['git', '-c', 'user.name=t', '-c', 'user.email=t@t']
    for args in (['init', '-q'], ['add', '.'], ['commit', '-qm', 'x']):
        subprocess.run(git + args, cwd=repo, check=True)
    commands = [
        check.Command('page.md', i, text, 'cpu') for i, text in enumerate([
            'echo redrawn > picture.png',
            'mkdir -p work_dirs && echo x > work_dirs/out.png',
            'echo x > litter.png',
        ])
    ]
    results = check.run_document(commands, None, root=str(repo))
    assert [r['rc'] for r in results] == [1, 0, 1]
    assert results[0]['changed'] == [' M picture.png']
    assert 'changed' not in results[1]
    assert results[2]['changed'] == ['?? litter.png']


def test_checker_prints_each_result_as_it_finishes(tmp_path):
    """The first command's result arrives while the second still runs."""
    arrived = []
    commands = [check.Command('page.md', 1, 'true', 'cpu'),
                check.Command('page.md', 2, 'sleep 2', 'cpu')]
    start = time.monotonic()
    results = check.run_document(
        commands, None, root=str(tmp_path),
        on_result=lambda r: arrived.append(time.monotonic()))
    end = time.monotonic()
    assert [r['rc'] for r in results] == [0, 0]
    assert len(arrived) == 2
    assert arrived[0] - start < end - start - 1.5

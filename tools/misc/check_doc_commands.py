"""Run the commands of README.md and docs/*.md as a new user would.

Every ``bash`` code block is read; a command continued with ``\\`` is one
command, and a ``# comment`` after it is dropped. Each command gets a kind:

- ``cpu``: runs as written on a CPU machine, in seconds to minutes;
- ``slow``: runs as written on a CPU but takes long (a 60-epoch demo
  training, a ViT-B benchmark): only with ``--all``;
- ``template``: holds a placeholder to fill in (``CONFIG``, ``PRETRAIN.pth``,
  ``WORK_DIR``, ``<job>``, ``[...]``): checked by the tests, not run;
- ``full-size``: a full-size recipe (ImageNet / ADE20K / COCO data, 8 GPUs,
  ``--device cuda``) or a cluster launch (Slurm): not run;
- ``maintainer``: rewrites tracked files (the README's pictures,
  ``make gallery GALLERY_DIR=docs/images``; the docs' tables and their
  JSON, ``--json docs/data/...``, ``update_docs_tables.py`` without
  ``--check``): not run.

The commands of one document run in order in one fresh ``bash`` (an empty
environment but ``HOME``, ``PATH`` without any virtual environment, ``LANG``
and ``TMPDIR``: what a new terminal gives), so ``source .venv/bin/activate``
in a block holds for the commands after it, as for a reader; the pages in
``docs/`` run after README's ``source .venv/bin/activate``. Each command's
result (ok or FAILED, seconds) is printed as soon as it finishes.

The documented commands write into ``data/`` and ``work_dirs/`` only (both
ignored by git). In a git checkout the checker compares ``git status`` and
the tracked files' contents before and after every command: a command that
changes them (a picture written over a tracked one, a file left in the
repository root) fails, and the summary names the files.

Usage:
    python tools/misc/check_doc_commands.py [--list] [--all]
        [--files README.md docs/*.md] [--log DIR]

Exit status 1 when a run command failed; the summary names it, and
``--log DIR`` keeps every command's output.
"""
import argparse
import glob
import os
import os.path as osp
import re
import shlex
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, NamedTuple, Optional

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

#: words that stand for something the reader fills in
PLACEHOLDERS = re.compile(
    r'(?<![\w./-])(CONFIG|CKPT|CHECKPOINT|PRETRAIN(\.pth)?|WORK_DIR|'
    r'PARTITION|JOB_NAME|THIS_CONFIG|THIS_FILE|DIR|OUT|N|GPUS)(?![\w=-])'
    r'|<[^>]+>|\[(--|configs/|CONFIG)|\.\.\.')

#: commands that need the full-size data sets, GPUs or a cluster
FULL_SIZE = (
    re.compile(r'--device cuda'),
    re.compile(r'tools/slurm_(train|test)\.sh'),
    re.compile(r'(dist_train|dist_test)\.sh \S+ ([4-9]|\d{2,})\b'),
    re.compile(r'tools/benchmarks/\w+\.sh \S+ 8\b'),
    re.compile(r'(train|test)\.py configs/(mae|simmim|colormae|camae|'
               r'benchmarks)/'),
    re.compile(r'dist_train\.sh configs/(mae|simmim|colormae|camae|'
               r'benchmarks)/'),
)

#: commands that write into tracked folders: for maintainers, not run
#: (the README's pictures, the JSON of the docs' tables, the tables)
MAINTAINER = (
    re.compile(r'(GALLERY_DIR=|--out[= ]|--json[= ])docs/'),
    re.compile(r'^cp .* docs/'),
    re.compile(r'update_docs_tables\.py(?!.*--check)'),
)

#: CPU commands that take long (minutes of training or benchmarking): run
#: with --all. Resuming the finished demo run is quick.
SLOW = (
    re.compile(r'tools/train\.py configs/demo/(?!.*--resume)'),
    re.compile(r'tools/benchmarks/\w+\.sh '),
    re.compile(r'evolving_cache_fidelity\.py .*--epochs \d{2,}'),
    re.compile(r'benchmark_\w+\.py(?!.*--arch tiny)'),
    re.compile(r'^make test\b'),
    re.compile(r'compare_strategies\.py'),
)

#: what README.md tells a reader to run in every new shell; the pages in
#: docs/ assume it
ENVIRONMENT = 'source .venv/bin/activate'


class Command(NamedTuple):
    """One documented command."""
    path: str
    line: int
    text: str
    kind: str


#: the first line of a plain ``` block that holds commands
COMMAND_START = re.compile(r'^([A-Z_]+=\S*\s+)*(python|bash|make|source)\b')


def bash_blocks(text: str) -> List[tuple]:
    """``(first line number, lines)`` of every ```bash (```sh, ```shell)
    block, and of every plain ``` block whose first line is a command."""
    blocks, lang, lines, start = [], None, [], 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped.startswith('```'):
            if lang is not None:
                lines.append(line)
            continue
        if lang is None:  # a block opens
            lang, lines, start = stripped[3:].strip(), [], number + 1
            continue
        first = next((x.strip() for x in lines if x.strip()), '')
        if lang in ('bash', 'sh', 'shell') or (
                lang == '' and COMMAND_START.match(first)):
            blocks.append((start, lines))
        lang = None
    return blocks


def strip_comment(line: str) -> str:
    """Drop a trailing ``# comment`` outside quotes."""
    quote = None
    for i, char in enumerate(line):
        if char in '\'"' and quote in (None, char):
            quote = None if quote else char
        elif char == '#' and quote is None and (i == 0
                                                or line[i - 1] in ' \t'):
            return line[:i].rstrip()
    return line.rstrip()


def commands_of(path: str) -> List[Command]:
    """The commands of one markdown file, classified."""
    text = open(path, encoding='utf-8').read()
    out = []
    for start, lines in bash_blocks(text):
        pending, first = '', start
        for offset, raw in enumerate(lines):
            line = strip_comment(raw.strip())
            if not pending:
                first = start + offset
            if not line and not pending:
                continue
            if line.endswith('\\'):
                pending += line[:-1].rstrip() + ' '
                continue
            command = re.sub(r'\s+', ' ', pending + line).strip()
            pending = ''
            if command:
                out.append(Command(osp.relpath(path, ROOT), first, command,
                                   classify(command)))
    return out


def classify(command: str) -> str:
    """``cpu``, ``slow``, ``template``, ``full-size`` or ``maintainer``."""
    if PLACEHOLDERS.search(command):
        return 'template'
    if any(p.search(command) for p in FULL_SIZE):
        return 'full-size'
    if any(p.search(command) for p in MAINTAINER):
        return 'maintainer'
    if any(p.search(command) for p in SLOW):
        return 'slow'
    return 'cpu'


def documents(files: Optional[List[str]]) -> List[str]:
    if files:
        return [osp.abspath(f) for f in files]
    return [osp.join(ROOT, 'README.md')] + sorted(
        glob.glob(osp.join(ROOT, 'docs', '*.md')))


def fresh_env() -> Dict[str, str]:
    """What a new terminal has: no virtual environment, no PYTHONPATH."""
    path = os.pathsep.join(
        p for p in os.environ.get('PATH', '/usr/bin:/bin').split(os.pathsep)
        if not osp.isfile(osp.join(p, 'activate')))
    env = dict(PATH=path, HOME=os.environ.get('HOME', '/root'))
    for key in ('LANG', 'TMPDIR', 'TERM', 'USER', 'OMP_NUM_THREADS'):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def is_git_checkout(root: str) -> bool:
    try:
        return subprocess.run(
            ['git', 'rev-parse', '--is-inside-work-tree'], cwd=root,
            capture_output=True, text=True).stdout.strip() == 'true'
    except OSError:
        return False


def tree_changes(before: frozenset, after: frozenset) -> List[str]:
    """The ``git status`` entries that appeared, changed or went away; a
    tracked file modified again is named as such."""
    changed = sorted(
        e for e in before.symmetric_difference(after)
        if not e.startswith('diff '))
    if not changed and before != after:
        changed = ['the contents of already modified tracked files']
    return changed


def run_document(commands: List[Command], log: Optional[str],
                 prelude: str = '', root: str = ROOT,
                 on_result: Optional[Callable[[dict], None]] = None
                 ) -> List[dict]:
    """Run commands in order in one fresh bash (after ``prelude``) in
    ``root``; their results, each passed to ``on_result`` as soon as its
    command finishes. In a git checkout the shell reports ``git status``
    and a digest of the tracked files' changes before the first command
    and after each one (before the next starts); a result with
    ``changed`` lists what its command changed (its rc is then 1 if it
    was 0)."""
    marker = f'@@mmmask-doc-check-{os.getpid()}@@'
    tree = ':'
    if is_git_checkout(root):
        git = 'git -C ' + shlex.quote(root)
        tree = (f'{git} status --porcelain --untracked-files=all '
                f'| sed "s/^/{marker} tree /"; '
                f'echo "{marker} tree diff $({git} diff --binary HEAD '
                '| sha256sum | cut -d" " -f1)"')
    lines = ['cd ' + shlex.quote(root), prelude,
             f'__mmmask_tree() {{ {tree}; }}', '__mmmask_tree',
             f'echo "{marker} ready"']
    for i, cmd in enumerate(commands):
        lines += [
            f'echo "{marker} start {i}"', '__t=$(date +%s)', cmd.text,
            f'echo "{marker} end {i} $? $(( $(date +%s) - __t ))"',
            '__mmmask_tree', f'echo "{marker} done {i}"'
        ]
    with tempfile.NamedTemporaryFile('w', suffix='.sh', delete=False) as f:
        f.write('\n'.join(lines) + '\n')
        script = f.name
    results, output, buffer, entries = [], [], [], set()
    state, current, result = None, None, None
    try:
        # the script from a file and stdin from /dev/null: a command that
        # reads stdin gets nothing instead of the commands after it
        proc = subprocess.Popen(
            ['bash', '--noprofile', '--norc', script], cwd=root,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env=fresh_env())
        for line in proc.stdout:
            line = line.rstrip('\n')
            if line.startswith(f'{marker} tree '):
                entries.add(line[len(marker) + 6:])
                continue
            output.append(line)
            if line == f'{marker} ready':
                state, entries = frozenset(entries), set()
            elif line.startswith(f'{marker} start '):
                current, buffer = int(line.split()[-1]), []
            elif line.startswith(f'{marker} end '):
                _, _, i, rc, seconds = line.split()
                result = dict(command=commands[int(i)], rc=int(rc),
                              seconds=int(seconds), output=buffer)
                current, entries = None, set()
            elif line.startswith(f'{marker} done ') and result:
                after = frozenset(entries)
                if state is not None and after != state:
                    result['changed'] = tree_changes(state, after)
                    result['rc'] = result['rc'] or 1
                state, entries = after, set()
                results.append(result)
                if on_result:
                    on_result(result)
                result = None
            elif current is not None:
                buffer.append(line)
        proc.wait()
    finally:
        os.remove(script)
    if log:
        name = commands[0].path.replace(os.sep, '_') + '.log'
        with open(osp.join(log, name), 'w') as f:
            f.write('\n'.join(output) + '\n')
    if len(results) < len(commands):  # the shell stopped (exit, crash)
        for cmd in commands[len(results):]:
            result = dict(command=cmd, rc=-1, seconds=0,
                          output=buffer[-20:] or output[-20:])
            results.append(result)
            if on_result:
                on_result(result)
    return results


def print_result(result: dict) -> None:
    """One line per command, then the end of a failed one's output."""
    cmd = result['command']
    status = 'ok' if result['rc'] == 0 else f'FAILED ({result["rc"]})'
    print(f'{status:11s} {result["seconds"]:5d} s  '
          f'{cmd.path}:{cmd.line}: {cmd.text}', flush=True)
    if result.get('changed'):
        print('    | changed the repository (write into work_dirs/ instead): '
              + ', '.join(result['changed']), flush=True)
    elif result['rc'] != 0:
        for line in result['output'][-15:]:
            print(f'    | {line}', flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--files', nargs='+',
                        help='markdown files (default: README.md, docs/*.md)')
    parser.add_argument('--list', action='store_true',
                        help='print the commands and their kinds, run none')
    parser.add_argument('--all', action='store_true',
                        help='also run the slow CPU commands')
    parser.add_argument('--log', help='folder for each document\'s output')
    args = parser.parse_args(argv)
    run_kinds = ('cpu', 'slow') if args.all else ('cpu', )
    if args.log:
        os.makedirs(args.log, exist_ok=True)
    failed, counts = [], {}
    for path in documents(args.files):
        commands = commands_of(path)
        for cmd in commands:
            counts[cmd.kind] = counts.get(cmd.kind, 0) + 1
        if args.list:
            for cmd in commands:
                print(f'{cmd.kind:10s} {cmd.path}:{cmd.line}: {cmd.text}')
            continue
        chosen = [c for c in commands if c.kind in run_kinds]
        if not chosen:
            continue
        start = time.time()
        readme = osp.basename(path) == 'README.md'
        prelude = '' if readme else ENVIRONMENT
        for result in run_document(chosen, args.log, prelude,
                                   on_result=print_result):
            if result['rc'] != 0:
                failed.append(result)
        print(f'-- {osp.relpath(path, ROOT)}: {time.time() - start:.0f} s',
              flush=True)
    skipped = {k: n for k, n in counts.items() if k not in run_kinds}
    print('commands: ' + ', '.join(f'{n} {k}' for k, n in sorted(
        counts.items())) + (f'; not run: {skipped}' if skipped and
                            not args.list else ''))
    if failed:
        print(f'{len(failed)} command(s) failed:', file=sys.stderr)
        for result in failed:
            cmd = result['command']
            print(f'  {cmd.path}:{cmd.line}: {cmd.text}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())

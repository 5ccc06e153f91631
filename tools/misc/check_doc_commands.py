"""Run the commands of README.md and docs/*.md as a new user would.

Every ``bash`` code block is read; a command continued with ``\\`` is one
command, and a ``# comment`` after it is dropped. Each command gets a kind:

- ``cpu``: runs as written on a CPU machine, in seconds to minutes;
- ``slow``: runs as written on a CPU but takes long (a 60-epoch demo
  training, a ViT-B benchmark): only with ``--all``;
- ``template``: holds a placeholder to fill in (``CONFIG``, ``PRETRAIN.pth``,
  ``WORK_DIR``, ``<job>``, ``[...]``): checked by the tests, not run;
- ``full-size``: a full-size recipe (ImageNet / ADE20K / COCO data, 8 GPUs,
  ``--device cuda``) or a cluster launch (Slurm): not run.

The commands of one document run in order in one fresh ``bash`` (an empty
environment but ``HOME``, ``PATH`` without any virtual environment, ``LANG``
and ``TMPDIR``: what a new terminal gives), so ``source .venv/bin/activate``
in a block holds for the commands after it, as for a reader; the pages in
``docs/`` run after README's ``source .venv/bin/activate``. Run it in a
fresh clone: commands write to ``data/``, ``work_dirs/`` and
``docs/images/`` (``make gallery``) as documented.

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
import time
from typing import Dict, List, NamedTuple, Optional

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
    """``cpu``, ``slow``, ``template`` or ``full-size``."""
    if PLACEHOLDERS.search(command):
        return 'template'
    if any(p.search(command) for p in FULL_SIZE):
        return 'full-size'
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


def run_document(commands: List[Command], log: Optional[str],
                 prelude: str = '') -> List[dict]:
    """Run commands in order in one fresh bash (after ``prelude``); their
    results."""
    marker = f'@@mmmask-doc-check-{os.getpid()}@@'
    lines = ['cd ' + shlex.quote(ROOT), prelude]
    for i, cmd in enumerate(commands):
        lines += [
            f'echo "{marker} start {i}"', '__t=$(date +%s)',
            cmd.text, f'echo "{marker} end {i} $? $(( $(date +%s) - __t ))"'
        ]
    script = '\n'.join(lines) + '\n'
    proc = subprocess.run(['bash', '--noprofile', '--norc'], input=script,
                          text=True, capture_output=True, env=fresh_env(),
                          cwd=ROOT)
    output = proc.stdout + proc.stderr
    results, current, buffer = [], None, []
    for line in proc.stdout.splitlines():
        if line.startswith(f'{marker} start '):
            current, buffer = int(line.split()[-1]), []
        elif line.startswith(f'{marker} end '):
            _, _, i, rc, seconds = line.split()
            results.append(dict(command=commands[int(i)], rc=int(rc),
                                seconds=int(seconds), output=buffer))
            current = None
        elif current is not None:
            buffer.append(line)
    if log:
        name = commands[0].path.replace(os.sep, '_') + '.log'
        with open(osp.join(log, name), 'w') as f:
            f.write(output)
    if len(results) < len(commands):  # the shell stopped (exit, crash)
        for cmd in commands[len(results):]:
            results.append(dict(command=cmd, rc=-1, seconds=0,
                                output=proc.stderr.splitlines()[-20:]))
    return results


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
                print(f'{cmd.kind:9s} {cmd.path}:{cmd.line}: {cmd.text}')
            continue
        chosen = [c for c in commands if c.kind in run_kinds]
        if not chosen:
            continue
        start = time.time()
        readme = osp.basename(path) == 'README.md'
        prelude = '' if readme else ENVIRONMENT
        for result in run_document(chosen, args.log, prelude):
            cmd = result['command']
            status = 'ok' if result['rc'] == 0 else f'FAILED ({result["rc"]})'
            print(f'{status:11s} {result["seconds"]:5d} s  '
                  f'{cmd.path}:{cmd.line}: {cmd.text}', flush=True)
            if result['rc'] != 0:
                failed.append(result)
                for line in result['output'][-15:]:
                    print(f'    | {line}')
        print(f'-- {osp.relpath(path, ROOT)}: {time.time() - start:.0f} s',
              flush=True)
    skipped = {k: n for k, n in counts.items() if k not in run_kinds}
    print('commands: ' + ', '.join(f'{n} {k}' for k, n in sorted(
        counts.items())) + (f'; not run: {skipped}' if skipped and
                            not args.list else ''))
    if failed:
        print(f'{len(failed)} command(s) failed', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())

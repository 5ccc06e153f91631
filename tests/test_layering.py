"""The import layers of ``mmmask/`` and the masker interface (issue 22).

``docs/architecture.md`` lists the layers. A module may import modules of
its own subpackage and of lower layers, never of a higher layer or of a
peer at its own layer, and no chain of imports leads back to where it
started. Imports inside functions count: a lazy import hides a cycle from
the interpreter, not from a reader.

The checks read the source with :mod:`ast` (nothing is imported), and are
tested on a small tree that has each fault.
"""
import ast
import pathlib
import textwrap
from typing import Dict, Iterator, List, Optional, Set, Tuple

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / 'mmmask'

#: the layers, lowest first; ``''`` is ``mmmask/__init__.py`` (it imports
#: the registering subpackages); tools/ and tests/ sit above them all
LAYERS: Tuple[Tuple[str, ...], ...] = (
    ('errors', 'version', 'compat'),
    ('fileio', ),
    ('masks', ),
    ('models', ),
    ('datasets', 'evaluation', 'visualization'),
    ('engine', ),
    ('', ),
    ('apis', ),
    ('downstream', ),
)

#: an import: (importing module, imported module, line)
Edge = Tuple[str, str, int]


def module_names(root: pathlib.Path) -> Dict[str, pathlib.Path]:
    """Dotted module name -> file, for every ``.py`` file under ``root``."""
    names = {}
    for path in sorted(root.rglob('*.py')):
        parts = path.relative_to(root.parent).with_suffix('').parts
        if parts[-1] == '__init__':
            parts = parts[:-1]
        names['.'.join(parts)] = path
    return names


def _known(name: str, modules: Dict[str, pathlib.Path]) -> Optional[str]:
    """``name`` or its longest prefix that is a module of ``modules``."""
    while name and name not in modules:
        name = name.rpartition('.')[0]
    return name or None


def import_edges(root: pathlib.Path) -> List[Edge]:
    """Every import of a module of the package at ``root`` by another one,
    at module level and inside functions.

    ``from a import b`` points at ``a.b`` when that is a module, else at
    ``a``. The packages above the imported module, which Python runs first,
    are not counted (every import would lead back to the top package).
    """
    modules = module_names(root)
    top = root.name
    edges = []
    for name, path in modules.items():
        package = name if path.name == '__init__.py' else \
            name.rpartition('.')[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ''
                if node.level:
                    parts = package.split('.')
                    parts = parts[:len(parts) - node.level + 1]
                    base = '.'.join(parts + ([base] if base else []))
                targets = [
                    f'{base}.{alias.name}'
                    if f'{base}.{alias.name}' in modules else base
                    for alias in node.names
                ]
            for target in targets:
                if target != top and not target.startswith(top + '.'):
                    continue
                found = _known(target, modules)
                edge = (name, found, node.lineno)
                if found not in (None, name) and edge not in edges:
                    edges.append(edge)
    return edges


def subpackage(name: str) -> str:
    """``'engine'`` for ``mmmask.engine.hooks.utils``; ``''`` for the top."""
    parts = name.split('.')
    return parts[1] if len(parts) > 1 else ''


def layer_of(name: str, layers=LAYERS) -> int:
    for index, members in enumerate(layers):
        if subpackage(name) in members:
            return index
    raise KeyError(f'{name} is in no layer: add {subpackage(name)!r} to '
                   'LAYERS here and to docs/architecture.md')


def upward_imports(edges: List[Edge], layers=LAYERS) -> List[str]:
    """Imports of a higher layer or of a peer, as readable lines."""
    found = []
    for source, target, line in edges:
        if subpackage(source) == subpackage(target):
            continue
        if layer_of(target, layers) >= layer_of(source, layers):
            found.append(f'{source} (line {line}) imports {target}: '
                         f'{subpackage(target) or "mmmask"} is not below '
                         f'{subpackage(source) or "mmmask"}')
    return found


def import_cycles(edges: List[Edge]) -> List[List[str]]:
    """The import cycles: strongly connected sets of more than one module
    (Tarjan's algorithm), each sorted."""
    graph: Dict[str, Set[str]] = {}
    for source, target, _ in edges:
        graph.setdefault(source, set()).add(target)
        graph.setdefault(target, set())
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            members = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                members.append(member)
                if member == node:
                    break
            if len(members) > 1:
                cycles.append(sorted(members))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


# masker probes ---------------------------------------------------------

#: names under which code holds a masker
MASKER_NAMES = ('masker', 'm', 'module')


def masker_attributes(maskers: pathlib.Path) -> Set[str]:
    """What the classes in ``maskers/`` define: methods, class attributes
    and ``self.<name> = ...`` in their methods."""
    names = set()
    for path in maskers.glob('*.py'):
        for cls in ast.walk(ast.parse(path.read_text())):
            if not isinstance(cls, ast.ClassDef):
                continue
            for item in cls.body:
                if isinstance(item, (ast.Assign, ast.AnnAssign)):
                    targets = item.targets if isinstance(
                        item, ast.Assign) else [item.target]
                    names.update(t.id for t in targets
                                 if isinstance(t, ast.Name))
                elif isinstance(item,
                                (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(item.name)
                    names.update(
                        node.attr for node in ast.walk(item)
                        if isinstance(node, ast.Attribute)
                        and isinstance(node.ctx, ast.Store)
                        and isinstance(node.value, ast.Name)
                        and node.value.id == 'self')
    return names - {'__init__', 'forward'}


def _holds_masker(node: ast.expr) -> bool:
    """``masker``, ``m``, ``module`` or ``<anything>.masker``."""
    if isinstance(node, ast.Name):
        return node.id in MASKER_NAMES
    return isinstance(node, ast.Attribute) and node.attr == 'masker'


def _outside_base_masker(tree: ast.AST) -> Iterator[ast.Call]:
    """The calls of ``tree`` that are not inside ``class BaseMasker``."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.ClassDef) and node.name == 'BaseMasker':
            continue
        if isinstance(node, ast.Call):
            yield node
        todo.extend(ast.iter_child_nodes(node))


def masker_probes(root: pathlib.Path, attributes: Set[str]) -> List[str]:
    """``hasattr``/``getattr`` calls that ask a masker for one of
    ``attributes`` (or for a name computed at run time), outside
    ``BaseMasker``."""
    found = []
    for path in sorted(root.rglob('*.py')):
        calls = sorted(_outside_base_masker(ast.parse(path.read_text())),
                       key=lambda call: (call.lineno, call.col_offset))
        for call in calls:
            if not (isinstance(call.func, ast.Name)
                    and call.func.id in ('hasattr', 'getattr')
                    and len(call.args) >= 2
                    and _holds_masker(call.args[0])):
                continue
            what = call.args[1]
            if isinstance(what, ast.Constant):
                if what.value not in attributes:
                    continue  # e.g. hasattr(masker_cfg, 'get')
            elif not (isinstance(call.args[0], ast.Attribute)
                      or call.args[0].id == 'masker'):
                continue  # getattr(module, name): any module
            found.append(f'{path.relative_to(root.parent)}:{call.lineno} '
                         f'{ast.unparse(call)}')
    return found


# the real tree ---------------------------------------------------------


def test_every_subpackage_has_a_layer():
    for name in module_names(ROOT):
        layer_of(name)


def test_no_module_imports_a_higher_layer():
    edges = import_edges(ROOT)
    assert len(edges) > 100  # the walk sees the imports
    upward = upward_imports(edges)
    assert not upward, 'imports of a higher layer:\n' + '\n'.join(upward)


def test_no_import_cycles():
    cycles = import_cycles(import_edges(ROOT))
    assert not cycles, 'import cycles:\n' + '\n'.join(
        ' <-> '.join(cycle) for cycle in cycles)


def test_no_masker_probes_outside_base_masker():
    attributes = masker_attributes(ROOT / 'models' / 'maskers')
    assert {'credit', 'max_throw_ratio', 'rank_local_buffers',
            'cache_kind', 'probes_attention'} <= attributes
    probes = masker_probes(ROOT, attributes)
    assert not probes, ('ask the masker through BaseMasker\'s interface '
                        'instead:\n' + '\n'.join(probes))


# the checks find what they look for ----------------------------------


def _tree(tmp_path: pathlib.Path, files: Dict[str, str]) -> pathlib.Path:
    root = tmp_path / 'pkg'
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


LOW_HIGH = (('low', ), ('mid_a', 'mid_b'), ('high', ))


def test_checks_find_upward_and_peer_imports(tmp_path):
    root = _tree(
        tmp_path, {
            '__init__.py': '',
            'low/__init__.py': 'from .core import x\n',
            'low/core.py': 'def f():\n    from pkg.high.tool import y\n',
            'mid_a/__init__.py': 'from ..mid_b import z\n',
            'mid_b/__init__.py': 'from pkg.low import core\n',
            'high/__init__.py': '',
            'high/tool.py': 'import pkg.low.core\nfrom pkg import mid_a\n',
        })
    edges = import_edges(root)
    assert ('pkg.low.core', 'pkg.high.tool', 2) in edges  # in a function
    assert ('pkg.mid_b', 'pkg.low.core', 1) in edges  # from pkg.low import
    assert ('pkg.high.tool', 'pkg.mid_a', 2) in edges
    upward = upward_imports(edges, LOW_HIGH)
    assert len(upward) == 2
    assert upward[0].startswith('pkg.low.core (line 2) imports '
                                'pkg.high.tool')
    assert upward[1].startswith('pkg.mid_a (line 1) imports pkg.mid_b')
    with pytest.raises(KeyError, match="'other'"):
        layer_of('pkg.other.x', LOW_HIGH)


def test_checks_find_cycles_through_lazy_imports(tmp_path):
    root = _tree(
        tmp_path, {
            '__init__.py': '',
            'low/__init__.py': '',
            'low/a.py': 'from .b import g\n',
            'low/b.py': 'def g():\n    from pkg.low.c import h\n',
            'low/c.py': 'from . import a\n',
            'low/d.py': 'from . import a, c\n',
        })
    assert import_cycles(import_edges(root)) == [[
        'pkg.low.a', 'pkg.low.b', 'pkg.low.c'
    ]]


def test_probe_check_finds_masker_probes_only(tmp_path):
    root = _tree(
        tmp_path, {
            'maskers.py':
            '''
            class BaseMasker:
                cuts = None
                def credit(self, losses):
                    return getattr(self, 'cuts', None)  # inside: allowed
            ''',
            'user.py':
            '''
            def use(model, masker, masker_cfg, module, name):
                hasattr(masker, 'credit')
                getattr(model.masker, 'cuts', None)
                getattr(masker, name)
                hasattr(masker_cfg, 'credit')
                hasattr(masker, 'get')
                getattr(module, 'backbone', None)
                getattr(module, name)
                getattr(model, 'masker', None)
            ''',
        })
    attributes = masker_attributes(root)
    assert attributes == {'cuts', 'credit'}
    probes = masker_probes(root, attributes)
    assert [p.split(' ', 1)[1] for p in probes] == [
        "hasattr(masker, 'credit')", "getattr(model.masker, 'cuts', None)",
        'getattr(masker, name)'
    ]

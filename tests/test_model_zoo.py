"""The OpenMMLab pages: every method's configs/<method>/README.md cites
its paper (BibTeX), sets the paper's numbers beside ours, links configs
that exist; every metafile.yml follows mmpretrain's schema and names
configs that exist and parse (tests/test_configs.py builds each of them);
model-index.yml and docs/model_zoo.md reach every page; and the docs cite
papers, not paper files outside the repository."""
import ast
import glob
import os.path as osp
import re

import pytest
import yaml

from tests.helpers import ROOT
from tests.test_configs import CONFIGS

METHODS = ('mae', 'simmim', 'colormae', 'amt', 'ehm', 'epm', 'camae')
MODEL_KEYS = {'Name', 'Metadata', 'In Collection', 'Results', 'Config',
              'Weights'}


def page(method: str) -> str:
    return open(osp.join(ROOT, 'configs', method, 'README.md')).read()


def metafile(method: str) -> dict:
    path = osp.join(ROOT, 'configs', method, 'metafile.yml')
    with open(path) as f:
        return yaml.safe_load(f)


def relative_links(path: str, text: str) -> list:
    links = re.findall(r'\]\(([^)#\s]+)(?:#[^)]*)?\)', text)
    return [osp.normpath(osp.join(osp.dirname(path), link)) for link in links
            if not link.startswith(('http://', 'https://'))]


@pytest.mark.parametrize('method', METHODS)
def test_method_page_cites_compares_and_links(method):
    text = page(method)
    assert text.startswith('# ')
    bibtex = re.findall(r'```bibtex\n(.*?)\n```', text, re.S)
    assert len(bibtex) == 1
    entry = bibtex[0]
    assert re.match(r'@(inproceedings|article|misc)\{\w+,\n', entry)
    assert entry.count('{') == entry.count('}') and entry.endswith('}')
    for field in ('title', 'author'):
        assert re.search(rf'^  {field} +=', entry, re.M), field
    for heading in ('## Abstract (in our words)', '## Results',
                    '## Configs', '## Citation'):
        assert heading in text, heading
    assert re.search(r"\*\*The paper(?:'s|s') numbers\*\*", text)
    assert '**Measured here**' in text
    assert 'not measured' in text  # the full-size runs, with the reason
    path = osp.join(ROOT, 'configs', method, 'README.md')
    for target in relative_links(path, text):
        assert osp.exists(target), target
    # every config of the metafile has its row and link on the page
    linked = set(relative_links(path, text))
    for model in metafile(method)['Models']:
        assert osp.join(ROOT, model['Config']) in linked, model['Name']


@pytest.mark.parametrize('method', METHODS)
def test_metafile_follows_mmpretrain_schema(method):
    meta = metafile(method)
    assert set(meta) == {'Collections', 'Models'}
    (collection, ) = meta['Collections']
    assert collection['README'] == f'configs/{method}/README.md'
    assert collection['Paper']['Title']
    for model in meta['Models']:
        assert set(model) == MODEL_KEYS, model['Name']
        assert model['In Collection'] == collection['Name']
        assert model['Weights'] is None and model['Results'] is None
        config = osp.join(ROOT, model['Config'])
        assert osp.isfile(config), model['Config']
        ast.parse(open(config).read(), config)
        assert config in CONFIGS  # built by tests/test_configs.py
        name = osp.basename(config)[:-3]
        assert model['Name'] == name
        epochs = int(re.search(r'-(\d+)e_', name).group(1))
        gpus, per_gpu = map(int, re.search(r'_(\d+)xb(\d+)', name).groups())
        assert model['Metadata']['Epochs'] == epochs
        assert model['Metadata']['Batch Size'] == gpus * per_gpu


def test_model_index_and_zoo_reach_every_page():
    with open(osp.join(ROOT, 'model-index.yml')) as f:
        imports = yaml.safe_load(f)['Import']
    assert imports == [f'configs/{m}/metafile.yml' for m in METHODS]
    names = [m['Name'] for method in METHODS
             for m in metafile(method)['Models']]
    assert len(names) == len(set(names))
    zoo_path = osp.join(ROOT, 'docs', 'model_zoo.md')
    zoo = set(relative_links(zoo_path, open(zoo_path).read()))
    for method in METHODS:
        for name in ('README.md', 'metafile.yml'):
            assert osp.join(ROOT, 'configs', method, name) in zoo


def test_docs_and_code_cite_papers_not_files_outside_the_repository():
    pages = ([osp.join(ROOT, 'README.md')]
             + glob.glob(osp.join(ROOT, 'docs', '*.md'))
             + glob.glob(osp.join(ROOT, 'configs', '*', 'README.md')))
    # docstrings and config comments too (this file names the pattern)
    pages += [p for folder in ('mmmask', 'configs', 'tools', 'tests')
              for p in glob.glob(osp.join(ROOT, folder, '**', '*.py'),
                                 recursive=True)
              if osp.abspath(p) != osp.abspath(__file__)]
    for path in pages:
        text = open(path).read()
        assert not re.search(r'papers/[\w-]+\.txt', text), path

"""Install mmmask: mask strategies for masked image modeling (mmpretrain)."""
from setuptools import find_packages, setup


def get_version() -> str:
    """Read ``__version__`` from mmmask/version.py without importing mmmask."""
    scope: dict = {}
    with open('mmmask/version.py', encoding='utf-8') as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='mmmask',
    version=get_version(),
    description='Masking strategies for masked image modeling, as an '
    'OpenMMLab (mmpretrain) plugin',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    python_requires='>=3.9',
    license='Apache License 2.0',
    # The stack (torch, mmcv with ops, mmpretrain, ...) is pinned in
    # requirements/constraints.txt and installed by tools/setup_env.sh, because
    # mmcv must be compiled against the installed torch.
    install_requires=[],
    zip_safe=False,
)

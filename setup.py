"""mmfusion packaging. Use tools/install.sh (or `make install`) for a working
environment: torch/torchvision/torchaudio need exact pins and mmcv must be
compiled against them without build isolation, which plain pip cannot order."""
from setuptools import find_packages, setup


def read_requirements(path: str) -> list:
    with open(path) as f:
        return [line.split('#')[0].strip() for line in f if line.split('#')[0].strip()]


setup(
    name='mmfusion',
    version='0.1.0',
    description='Modular multimodal foundation-model toolkit on mmengine',
    packages=find_packages(include=['mmfusion', 'mmfusion.*']),
    python_requires='>=3.10',
    install_requires=read_requirements('requirements/runtime.txt'),
    extras_require=dict(
        mim=read_requirements('requirements/mminstall.txt'),
        tests=read_requirements('requirements/tests.txt'),
        optional=read_requirements('requirements/optional.txt')),
)

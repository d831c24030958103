from setuptools import find_packages, setup

setup(name='mmfusion', version='0.1.0', packages=find_packages(include=['mmfusion', 'mmfusion.*']),
      python_requires='>=3.10')

"""The web demo in a real headless Chromium: upload the astronaut, submit class
names, get the overlay back as a PNG (Debian's chromium + chromedriver)."""
import io
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
CHROMEDRIVER = shutil.which('chromedriver')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f'the web demo exited with code {proc.returncode}')
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f'{url} did not answer within {timeout} s')


@pytest.fixture
def web_demo(tmp_path):
    port = _free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED='False', OMP_NUM_THREADS='1',
               NO_PROXY='127.0.0.1,localhost')
    log = open(tmp_path / 'web_demo.log', 'w')
    proc = subprocess.Popen([sys.executable, 'demo/web_demo.py', '--random-weights',
                             '--port', str(port)], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}/'
    try:
        _wait_for(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def browser(tmp_path):
    if CHROMIUM is None or CHROMEDRIVER is None:
        missing = [n for n, p in (('chromium', CHROMIUM), ('chromedriver', CHROMEDRIVER))
                   if p is None]
        pytest.skip(f'{" and ".join(missing)} not found: install Debian\'s chromium and '
                    'chromium-driver (tools/install.sh does, as root)')
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # Without the background-networking flags Chromium keeps dialling out,
    # which this closed network refuses.
    for flag in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                 '--disable-quic', '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--window-size=1400,1300',
                 f'--user-data-dir={tmp_path / "chromium-profile"}'):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_segmentation_tab_returns_an_overlay_png(web_demo, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
    from skimage import data

    astronaut = data.astronaut()
    upload = tmp_path / 'astronaut.png'
    Image.fromarray(astronaut).save(upload)

    browser.get(web_demo)
    wait = WebDriverWait(browser, 120)
    file_input = wait.until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, '#seg-input input[type=file]')))
    file_input.send_keys(str(upload))
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, '#seg-input img')))
    classes = browser.find_element(By.CSS_SELECTOR, '#seg-classes textarea, #seg-classes input')
    classes.clear()
    classes.send_keys('person, sky, rocket')
    browser.find_element(By.CSS_SELECTOR, '#seg-run').click()
    output = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, '#seg-output img')))
    src = output.get_attribute('src')
    with urllib.request.urlopen(src, timeout=30) as r:
        payload = r.read()
    assert payload[:8] == b'\x89PNG\r\n\x1a\n', f'the output is not a PNG: {src}'
    overlay = np.asarray(Image.open(io.BytesIO(payload)).convert('RGB'))
    assert overlay.shape == astronaut.shape
    # The overlay colours the segments: it differs from the uploaded photo.
    assert np.abs(overlay.astype(int) - astronaut.astype(int)).mean() > 1.0

    time.sleep(0.5)  # let the output image paint before the screenshot
    shot = tmp_path / 'web_demo_browser.png'
    assert browser.save_screenshot(str(shot))
    os.makedirs(osp.join(ROOT, 'outputs'), exist_ok=True)
    shutil.copy(shot, osp.join(ROOT, 'outputs', 'web_demo_browser.png'))
    assert Image.open(shot).size[0] > 0

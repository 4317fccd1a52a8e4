"""The shared headless-Chromium helper sees what a reader would: decoded images, console errors, sizes."""

import base64

from browser import all_images_decoded, console_errors, images, open_page, screenshot

# A 1x1 PNG.
PIXEL = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201b8a6d6"
    "130000000049454e44ae426082")).decode()


def test_chromium_reports_decoded_images_and_console_errors(chromium, tmp_path):
    page = tmp_path / "page.html"
    page.write_text(f'<!doctype html><html><body><img alt="pixel" src="data:image/png;base64,{PIXEL}">'
                    '<img alt="broken" src="data:image/png;base64,AAAA">'
                    '<script>console.error("deliberate")</script></body></html>')
    driver = open_page(chromium, page)
    widths = {i["alt"]: i["width"] for i in images(driver)}
    assert widths["pixel"] == 1 and widths["broken"] == 0
    assert not all_images_decoded(driver)
    assert any("deliberate" in m for m in console_errors(driver))
    assert screenshot(driver, tmp_path / "page.png").stat().st_size > 0


def test_a_clean_page_has_no_console_errors(chromium, tmp_path):
    page = tmp_path / "clean.html"
    page.write_text(f'<!doctype html><html><body><img alt="pixel" src="data:image/png;base64,{PIXEL}"></body></html>')
    driver = open_page(chromium, page)
    assert all_images_decoded(driver)
    assert console_errors(driver) == []

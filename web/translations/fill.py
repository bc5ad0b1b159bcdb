"""Fill the zh_Hans_CN catalogue from zh_glossary.ZH (run by web/i18n.sh before compiling)."""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

sys.path.insert(0, str(Path(__file__).parent))
from zh_glossary import ZH

path = Path(__file__).parent / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po"
with path.open("rb") as fh:
    catalog = read_po(fh, locale="zh_Hans_CN")
missing = []
for message in catalog:
    if not message.id:
        continue
    key = message.id if isinstance(message.id, str) else message.id[0]
    if key in ZH:
        message.string = ZH[key]
    elif not message.string:
        missing.append(key)
with path.open("wb") as fh:
    write_po(fh, catalog, width=100)
if missing:
    print("untranslated (zh):", *missing, sep="\n  ")

#!/usr/bin/env bash
# Refresh the message catalogues: extract, merge, (translate in web/translations/*.po), compile.
set -euo pipefail
cd "$(dirname "$0")"
../.venv/bin/pybabel extract -F babel.cfg -k _l -o translations/messages.pot .
for lang in zh_Hans_CN en; do
  if [ -f "translations/$lang/LC_MESSAGES/messages.po" ]; then
    ../.venv/bin/pybabel update -i translations/messages.pot -d translations -l "$lang" --no-fuzzy-matching
  else
    ../.venv/bin/pybabel init -i translations/messages.pot -d translations -l "$lang"
  fi
done
../.venv/bin/python translations/fill.py
../.venv/bin/pybabel compile -d translations

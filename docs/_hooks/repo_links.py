"""mkdocs hook: links from a page to a file of the repository outside docs/ (``../benchmarks/README.md``).

mkdocs warns about every link whose target is not a page, and ``--strict`` turns that into an error. Links to
repository files are meant (they work on the code host and in a checkout), so when the target exists the
warning becomes an info line; a link to a file that does not exist stays a warning and fails the build.
"""

import logging
import re
from pathlib import Path

_NOT_FOUND = re.compile(r"Doc file '(?P<page>[^']+)' contains a link '(?P<url>[^']+)', but the target")


class _RepoLinks(logging.Filter):
    def __init__(self, docs_dir):
        super().__init__()
        self.docs_dir = Path(docs_dir)
        self.repo = self.docs_dir.parent

    def filter(self, record):
        if record.levelno == logging.WARNING:
            m = _NOT_FOUND.match(record.getMessage())
            if m:
                path = m["url"].split("#")[0]
                target = (self.docs_dir / m["page"]).parent / path
                try:
                    inside = target.resolve().is_relative_to(self.repo.resolve())
                except OSError:
                    inside = False
                if inside and not target.resolve().is_relative_to(self.docs_dir.resolve()) and target.exists():
                    record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def on_config(config):
    """Install the filter on the logger that reports page links."""
    logger = logging.getLogger("mkdocs.structure.pages")
    for f in list(logger.filters):
        if isinstance(f, _RepoLinks):
            logger.removeFilter(f)
    logger.addFilter(_RepoLinks(config["docs_dir"]))
    return config

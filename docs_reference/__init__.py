"""The documentation site's reference pages, generated when the site is built (`make docs`) from the one place
each thing is defined: the stack's pydantic models, the server's settings, the route table, the argument
parsers and the error hierarchy. `hooks.py` is the MkDocs hook that puts them into the pages."""

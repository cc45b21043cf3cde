"""Cocreatie Radar: find co-creation at social organisations in Dutch news.

Importing this package has no side effects: no model is loaded, no database opened.
"""

__version__ = "0.1.0"

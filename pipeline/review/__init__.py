"""The analyst's review web app: queue, article, keyboard decisions, audit trail and agreement.

Importing this package starts nothing and opens no database: `create_app` and `serve` do that.
May import the shared modules, the store and research (the export the queue offers).
"""

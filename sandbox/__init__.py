"""Local, stateful emulators of the Mailchimp Marketing API 3.0 and Salesforce REST/Bulk 2.0.

``python -m sandbox serve`` runs both in one process; see ``sandbox/mailchimp/README.md``.
Nothing here imports ``mcsf``: the emulators must read the APIs' documentation, not the
client's assumptions.
"""

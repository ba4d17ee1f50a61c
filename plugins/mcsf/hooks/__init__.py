"""Hooks: the only places mcsf talks to Mailchimp and Salesforce.

Import the hook modules directly (``from mcsf.hooks.mailchimp import MailchimpHook``); this
package imports nothing, so loading one hook never pulls in the other's client.
"""

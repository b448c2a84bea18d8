"""CRM connectors: the protocol (``base``) and the built-in ``local`` demo CRM and Salesforce."""

"""CRM sync: an example Services AI plugin that simulates pushing leads to a CRM."""

"""The command line: every flag with its role (`settings`), the parser the three scripts share (`args`)."""

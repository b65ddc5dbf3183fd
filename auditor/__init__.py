"""rarenet-audit: offline checks an auditor can run without the coordinator."""

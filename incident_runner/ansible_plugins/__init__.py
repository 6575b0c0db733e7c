"""Ansible plugins the executor enables for the playbooks it runs."""

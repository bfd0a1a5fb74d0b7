"""The RPM family (CentOS Stream, AlmaLinux, Rocky Linux, Fedora): repository trust and metadata, resolution."""

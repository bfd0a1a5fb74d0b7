"""Host plumbing every family uses: cache, HTTP and retries, sandbox and user namespaces,
trees, scratch directories, atomic outputs, architectures."""

"""After the build: check and verify against earlier builds, fleets of images, webhooks."""

"""The shared core every hyperhive service builds on; it imports no service."""

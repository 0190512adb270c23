"""Evaluate the real Pulumi program offline, under Pulumi's mocks: for tests, plans and policy checks."""

"""Yardsticks that take longer than the test suite: the formal-language table (`make yardsticks`)."""

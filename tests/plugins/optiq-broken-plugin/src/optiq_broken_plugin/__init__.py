"""A plugin that fails to import (test fixture)."""

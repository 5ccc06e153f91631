"""Writing files so that a failure or a kill never loses what was there."""
from .atomic import (DEFAULT_NEXT_STEP, WriteFailed, atomic_link,
                     atomic_save, atomic_write, atomic_write_text,
                     is_temporary, remove_stale_temporaries)

__all__ = [
    'WriteFailed', 'atomic_write', 'atomic_save', 'atomic_write_text',
    'atomic_link', 'is_temporary', 'remove_stale_temporaries',
    'DEFAULT_NEXT_STEP'
]

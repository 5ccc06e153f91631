"""Image loading that names the file it cannot decode."""
import os
from typing import Optional

from mmcv.transforms import LoadImageFromFile

from mmpretrain.registry import TRANSFORMS

from mmmask.errors import InvalidInputError


def image_advice(path: Optional[str]) -> str:
    """What to do about an image file mmcv cannot decode.

    mmcv's ``ignore_empty=True`` returns no sample when reading or decoding
    raises (a missing or empty file), but a truncated or garbage file
    decodes to ``None`` and fails an assertion whatever the flag says.
    """
    try:
        empty = os.path.getsize(path) == 0
    except (OSError, TypeError):
        empty = False
    if empty:
        return ('the file is empty; replace it or remove it from the '
                'dataset, or set ignore_empty=True in the loading transform '
                'to skip empty files')
    return ('it is truncated or not an image; replace it with a good copy '
            'or remove it from the dataset (ignore_empty=True in the '
            'loading transform does not skip such files: it skips only '
            'missing or empty ones)')


@TRANSFORMS.register_module()
class LoadImageFromFileNamingErrors(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile``; a file it cannot decode is named.

    mmcv raises an ``AssertionError`` without the path for a truncated
    file and a bare ``cv2.error`` for an empty one; here both become a
    ``ValueError`` that names the file and says what to do. A missing file
    still raises ``FileNotFoundError``; arguments and results are mmcv's.
    Our configs use it in place of ``LoadImageFromFile``.
    """

    def transform(self, results: dict) -> Optional[dict]:
        try:
            return super().transform(results)
        except FileNotFoundError:
            raise
        except Exception as err:  # AssertionError, cv2.error, PIL errors
            path = results.get('img_path')
            raise InvalidInputError(
                f'cannot decode the image file {path} ({type(err).__name__}:'
                f' {str(err).strip()}): {image_advice(path)}') from err

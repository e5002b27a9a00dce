"""Named vertex groups of the MediaPipe 478-point face mesh (the index space of py-feat's model).

These are facts of the MediaPipe topology (the same indices its ``face_mesh_connections`` lists
use), kept here as data so that the fallback path works without mediapipe installed. "Right" and
"left" are the subject's: the subject's right brow/eye is on the image's left.
"""

from __future__ import annotations

NUM_FACE_VERTICES = 468  # 0..467: the face surface; 468..477: the two irises (refined landmarks)
IRIS_VERTICES: tuple[int, ...] = tuple(range(468, 478))

FACE_OVAL: tuple[int, ...] = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)
# the lower half of the oval, ear to ear under the chin: the jaw line
JAW_LINE: tuple[int, ...] = (
    361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132,
)

# lips, listed corner -> corner; 61/291 are the outer corners, 78/308 the inner ones
UPPER_LIP_OUTER: tuple[int, ...] = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LOWER_LIP_OUTER: tuple[int, ...] = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
UPPER_LIP_INNER: tuple[int, ...] = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_LIP_INNER: tuple[int, ...] = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
UPPER_LIP = UPPER_LIP_OUTER + UPPER_LIP_INNER
LOWER_LIP = LOWER_LIP_OUTER + LOWER_LIP_INNER
LIPS = UPPER_LIP + LOWER_LIP
# the corners with their neighbours on both lips, outer and inner contours
LIP_CORNERS: tuple[int, ...] = (61, 185, 146, 78, 191, 95, 291, 409, 375, 308, 415, 324)

# brows, medial -> lateral, upper and lower contour
RIGHT_BROW_UPPER: tuple[int, ...] = (107, 66, 105, 63, 70)
RIGHT_BROW_LOWER: tuple[int, ...] = (55, 65, 52, 53, 46)
LEFT_BROW_UPPER: tuple[int, ...] = (336, 296, 334, 293, 300)
LEFT_BROW_LOWER: tuple[int, ...] = (285, 295, 282, 283, 276)
INNER_BROWS: tuple[int, ...] = (107, 66, 105, 55, 65, 52, 336, 296, 334, 285, 295, 282)
OUTER_BROWS: tuple[int, ...] = (105, 63, 70, 52, 53, 46, 334, 293, 300, 282, 283, 276)
BROWS = INNER_BROWS + OUTER_BROWS

# eyelids: the eye-opening contour, upper and lower half (corners 33/133 and 263/362 on both)
RIGHT_UPPER_LID: tuple[int, ...] = (33, 246, 161, 160, 159, 158, 157, 173, 133)
RIGHT_LOWER_LID: tuple[int, ...] = (33, 7, 163, 144, 145, 153, 154, 155, 133)
LEFT_UPPER_LID: tuple[int, ...] = (263, 466, 388, 387, 386, 385, 384, 398, 362)
LEFT_LOWER_LID: tuple[int, ...] = (263, 249, 390, 373, 374, 380, 381, 382, 362)
UPPER_LIDS = RIGHT_UPPER_LID + LEFT_UPPER_LID
LOWER_LIDS = RIGHT_LOWER_LID + LEFT_LOWER_LID
LIDS = UPPER_LIDS + LOWER_LIDS

# landmarks a quick test or a report can point at
MOUTH_CORNERS: tuple[int, int] = (61, 291)
"""Outer lip corners: (subject's right = image left, subject's left = image right)."""
BROW_POINTS: tuple[int, ...] = (107, 66, 105, 63, 70, 336, 296, 334, 293, 300)
FOREHEAD_TOP = 10
CHIN = 152

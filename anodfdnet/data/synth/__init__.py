"""Generated history/current pairs with exact anomaly masks (the ``synth:`` data SPEC).

Real labelled pairs are scarce, so training mixes in generated ones that teach the model what an
*abnormal* difference is and which differences are nuisance. A pair is made in four steps:

1. **Scene.** A "world" canvas larger than the output is painted: a background (a random crop of a
   photograph or texture shipped inside scikit-image's wheel, read from its data folder with no
   download, or a procedural surface: painted or brushed metal, concrete, corrugated sheet, hazard
   stripes) and machine parts drawn with OpenCV on top of it (pipes, plates with rivets or bolts,
   flanges with a bolt circle, cables, loose bolts and nuts), lit from one direction with shadows.
2. **Views.** History and current are two perspective views of that world (the current one moved by
   a random shift, rotation, scale and keystone; ``hard`` roughly doubles to triples the motion).
   Both views stay inside the world, so there are never black borders.
3. **Anomaly**, in the current image only: a foreign body, a missing component, a loose/displaced
   component, an oil leak, or a scratch/crack; about 15% of pairs have none. A missing or displaced
   part is removed from or moved in the world before the current view is taken; the others are
   painted in the current view's own frame.
4. **Nuisance**, independently on both images and never in the mask: illumination gradient, colour
   drift (gain, bias, gamma per channel), blur, sensor noise, JPEG artefacts (``hard`` adds cast
   shadows and glare).

The modules follow the steps: ``scene`` (background and parts), ``views``, ``anomalies``, ``nuisance``,
``pairs`` (the four steps composed: ``generate_pair``), ``source`` (the ``synth:`` SPEC) and ``gallery``
(the app's examples), on the drawing primitives of ``canvas`` and the photographs of ``photos``. Names
with a leading underscore are the generator's internals, shared by these modules; the API is what this
package exports.

The mask is exact by construction. With ``A`` the clean current view with the anomaly and ``B``
the same view without it (both uint8), the mask holds every pixel where some channel of ``A`` and
``B`` differs by more than :data:`CHANGE_LEVEL`, plus the anomaly's footprint: for a painted anomaly
(foreign body, scratch, oil film where its opacity exceeds 0.25) the footprint pixels that changed at
all, for a missing or moved part the whole union of its footprints before and after (where a moved
part happens to cover the same colours it is still the part). The clean current is ``A`` inside the
mask and ``B`` outside, so with ``nuisance=False`` the two images are equal outside the mask, and for
painted anomalies ``mask == (current != history).any(-1)`` exactly.
"""
from .anomalies import ANOMALIES, CHANGE_LEVEL, paste_foreign_body
from .gallery import GALLERY_ORDER, gallery, write_pairs
from .nuisance import HARDNESS, Hardness
from .pairs import KINDS, MAX_MASK_FRACTION, NONE_FRACTION, generate_pair
from .photos import available_photos
from .source import SynthSource

__all__ = ["ANOMALIES", "CHANGE_LEVEL", "GALLERY_ORDER", "HARDNESS", "KINDS", "MAX_MASK_FRACTION", "NONE_FRACTION", "Hardness",
           "SynthSource", "available_photos", "gallery", "generate_pair", "paste_foreign_body", "write_pairs"]

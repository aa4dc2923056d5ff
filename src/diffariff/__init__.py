"""diffariff: musical accompaniment co-creation with latent diffusion.

Listens to a context mix and generates one new instrument stem that fits it, steered by a text
prompt, an audio style reference, both or neither (the Diff-A-Riff family of models).
"""

__version__ = "0.1.0"

"""Priors over CLAP embeddings: where the latent model's CLAP condition comes from when the user gives
no audio reference.

``bridge``: the text-to-audio CLAP bridge (a text prompt -> audio-CLAP embeddings), whose diffusion MLP
also serves as the diffusion context prior; ``context_prior``: the embedded training pairs, sampling,
evaluation and role probe shared by every context prior; ``neighbour_prior``: the shipped context prior
(a role classifier, then a real stem of that role from similar contexts); ``load``: loads either kind
of context prior from its checkpoint. Import what you need from those modules; this package file stays
empty so that importing one of them stays cheap.
"""

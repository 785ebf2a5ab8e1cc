"""Generated images: prompt strategies, sampling from diffusers pipelines, textual inversion."""

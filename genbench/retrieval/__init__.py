"""Retrieved images: pools in the img2dataset / clip-retrieval layout and the search over them."""

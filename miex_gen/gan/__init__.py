"""GANimation training: critic, losses, schedule, data, trainer (the generator is the renderer's)."""

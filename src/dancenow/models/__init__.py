"""Networks (pix2pixHD generators / discriminators, face GAN), losses, VGG trunk, component I/O."""

from dancenow.models.blocks import ResnetBlock, init_weights
from dancenow.models.discriminator import (
    DiscriminatorConfig,
    MultiscaleDiscriminator,
    NLayerDiscriminator,
    build_discriminator,
)
from dancenow.models.face import (
    FaceGenerator,
    FaceGeneratorConfig,
    build_face_generator,
    face_discriminator_config,
)
from dancenow.models.generator import (
    GeneratorConfig,
    GlobalGenerator,
    LocalEnhancer,
    build_generator,
)
from dancenow.models.io import load_component, read_component_config, save_component
from dancenow.models.losses import (
    PIX2PIXHD_VGG_WEIGHTS,
    GANLoss,
    VGGPerceptualLoss,
    feature_matching_loss,
)
from dancenow.models.vgg import VGGTrunk, hed_weights_path, load_vgg_trunk

__all__ = [
    "DiscriminatorConfig",
    "FaceGenerator",
    "FaceGeneratorConfig",
    "GANLoss",
    "GeneratorConfig",
    "GlobalGenerator",
    "LocalEnhancer",
    "MultiscaleDiscriminator",
    "NLayerDiscriminator",
    "PIX2PIXHD_VGG_WEIGHTS",
    "ResnetBlock",
    "VGGPerceptualLoss",
    "VGGTrunk",
    "build_discriminator",
    "build_face_generator",
    "build_generator",
    "face_discriminator_config",
    "feature_matching_loss",
    "hed_weights_path",
    "init_weights",
    "load_component",
    "load_vgg_trunk",
    "read_component_config",
    "save_component",
]

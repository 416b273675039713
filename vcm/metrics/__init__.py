"""Metrics: image quality (PSNR in/out of mask), COCO AP via pycocotools, semantic mIoU."""

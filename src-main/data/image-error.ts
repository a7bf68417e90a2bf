/** A single image that cannot be used; the path and a short reason go to the user as is. */
export class ImageError extends Error {
  constructor(
    public path: string,
    public reason: string,
  ) {
    super(`${path}: ${reason}`);
    this.name = 'ImageError';
  }
}

/**
 * A little-endian register block: fields of 1, 2 or 4 bytes at fixed offsets. Reads of any
 * width and alignment assemble bytes from the fields they cover (unmapped bytes read 0, and a
 * driver may read an 8-bit part of a 32-bit register, as SeaBIOS does); a write takes effect
 * only when it matches a writable field exactly (VIRTIO 1.2 §4.1.3.1: drivers use the field's
 * width), other writes are ignored.
 */
export interface Field {
  offset: number;
  size: 1 | 2 | 4;
  get(): number;
  set?(value: number): void;
}

export class Registers {
  constructor(private readonly fields: readonly Field[]) {}

  read(offset: number, size: number): number {
    let value = 0;
    for (let i = 0; i < size; i++) {
      const f = this.fields.find((f) => offset + i >= f.offset && offset + i < f.offset + f.size);
      const byte = f ? (f.get() >>> (8 * (offset + i - f.offset))) & 0xff : 0;
      value |= byte << (8 * i);
    }
    return value >>> 0;
  }

  write(offset: number, size: number, value: number): void {
    const f = this.fields.find((f) => f.offset === offset && f.size === size);
    f?.set?.(size === 4 ? value >>> 0 : value & ((1 << (8 * size)) - 1));
  }
}

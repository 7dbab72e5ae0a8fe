// A small live chart on a <canvas>: the last minute of one figure, one point
// a second, as a line over a filled area, scaled to its largest value.

export interface SparklineOptions {
  /** Line colour (CSS). */
  color: string;
  /** Points kept (one a second). */
  capacity?: number;
  /** The scale never goes below this top value (e.g. 1 so that zeros stay flat at the bottom). */
  minTop?: number;
  /** Draw steps instead of slopes (for levels such as the overload state). */
  steps?: boolean;
}

export class Sparkline {
  private readonly values: number[] = [];
  private readonly capacity: number;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly options: SparklineOptions,
  ) {
    this.capacity = options.capacity ?? 60;
  }

  /** Every value held, oldest first. */
  get points(): readonly number[] {
    return this.values;
  }

  /** Adds a value and redraws. */
  push(value: number): void {
    this.values.push(Number.isFinite(value) ? value : 0);
    if (this.values.length > this.capacity) this.values.shift();
    this.draw();
  }

  private draw(): void {
    const { canvas, values, options } = this;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 240;
    const height = canvas.clientHeight || 48;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const g = canvas.getContext("2d");
    if (!g) return;
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    g.strokeStyle = "rgba(127,127,127,0.25)";
    g.lineWidth = 1;
    g.beginPath();
    g.moveTo(0, height - 0.5);
    g.lineTo(width, height - 0.5);
    g.stroke();
    if (values.length === 0) return;
    const top = Math.max(options.minTop ?? 0, ...values) || 1;
    const pad = 3;
    const step = width / Math.max(1, this.capacity - 1);
    const x0 = width - (values.length - 1) * step;
    const y = (v: number) => height - pad - (v / top) * (height - 2 * pad);
    g.beginPath();
    values.forEach((v, i) => {
      const x = x0 + i * step;
      if (i === 0) g.moveTo(x, y(v));
      else if (options.steps) {
        g.lineTo(x, y(values[i - 1]!));
        g.lineTo(x, y(v));
      } else g.lineTo(x, y(v));
    });
    g.strokeStyle = options.color;
    g.lineWidth = 1.5;
    g.stroke();
    g.lineTo(width, height);
    g.lineTo(x0, height);
    g.closePath();
    g.globalAlpha = 0.15;
    g.fillStyle = options.color;
    g.fill();
    g.globalAlpha = 1;
    g.beginPath();
    g.arc(width - 2, y(values[values.length - 1]!), 2.5, 0, Math.PI * 2);
    g.fillStyle = options.color;
    g.fill();
  }
}

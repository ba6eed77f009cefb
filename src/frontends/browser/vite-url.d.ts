// vite turns a `?url` import into the URL it serves (dev) or emits (build) the file at.
declare module '*?url' {
  const url: string;
  export default url;
}
